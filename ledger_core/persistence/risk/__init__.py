"""Risk rules: storage, and the policy loaded at posting time."""
