-- MLflow's own database beside Airflow's on the compose PostgreSQL (both keep an alembic_version table, so they
-- cannot share one). Run once by the postgres image on a new volume; on an existing volume run it by hand.
CREATE DATABASE mlflow OWNER airflow;
