# The journey engine as a container: `journey worker` in docker-compose.yml, or any
# other `journey` command (docker run --rm mbc-journey:latest --help).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package (installed, not editable) ...
COPY pyproject.toml README.md ./
COPY mbcjourney/ mbcjourney/
COPY events/ events/
COPY schemas/ schemas/
COPY projections/ projections/
COPY processors/ processors/
RUN pip install . \
    && useradd --create-home --uid 10001 journey

# ... and the topic definitions with their helper, for the topic-init service.
COPY infra/topics.txt infra/topics.txt
COPY infra/kafka/kafkactl.py infra/kafka/kafkactl.py

USER journey
ENTRYPOINT ["journey"]
CMD ["--help"]
