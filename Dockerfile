FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client make && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/replenish
COPY . .
RUN pip install --no-cache-dir uv && uv pip install --system -e .
