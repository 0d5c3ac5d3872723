"""The prediction service: FastAPI under gunicorn with uvicorn workers."""
