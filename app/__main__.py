"""`python -m app`: serve with uvicorn; on SIGTERM turn unready first, then drain."""

from __future__ import annotations

import logging
from types import FrameType

import uvicorn

from app.main import create_app
from app.service import Service
from app.settings import Settings


class DrainingServer(uvicorn.Server):
    """uvicorn that marks the service as draining the moment a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.service.begin_drain()
        super().handle_exit(sig, frame)


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.drain_timeout_s) or None,
        access_log=False,
    )
    DrainingServer(config, app.state.service).run()


if __name__ == "__main__":
    main()
