# The tracetune image: ML backend, RQ workers and the scheduled sync all run from it.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The CPU build of torch first: a bare torch requirement would pull a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY backend ./backend
COPY label_configs ./label_configs
RUN pip install '.[train]'

RUN useradd --create-home tracetune
USER tracetune
# The embedding model as ONNX, exported from the installed files into the user's model cache.
RUN python -W ignore -m tracetune.backend.vectors.onnx_export
ENTRYPOINT ["tracetune"]
CMD ["--help"]
