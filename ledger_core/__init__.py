"""The ledger's domain: money, wallets, posting rules and their persistence.

Nothing here speaks HTTP or talks to a broker; the gateway and the workers are thin
adapters over these modules.
"""
