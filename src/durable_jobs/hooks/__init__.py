"""Airflow hooks: turn a connection into a shared client (and define the connection types)."""
