# One image for the API (`hpo serve`) and, later, the background worker.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HPO_HOST=0.0.0.0 HPO_PORT=8000 HPO_LOG_FORMAT=json
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip install . && useradd --system --uid 10001 hpo
USER hpo
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
CMD ["hpo", "serve"]
