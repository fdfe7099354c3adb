"""The ordering platform: accounts, web app and POS API (a FastAPI service beside Airflow)."""
