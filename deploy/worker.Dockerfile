# A tether worker for docker-compose.yml. It reaches the host's Docker engine through the
# socket mounted by compose, to create sandboxes there; no sandbox ever gets that socket.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock pyproject.toml ./
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
ENV TETHER_DATA_DIR=/data
CMD ["python", "worker.py"]
