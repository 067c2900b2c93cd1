"""`python -m app`: serve with uvicorn; on SIGTERM turn unready first, then drain."""

from __future__ import annotations

from types import FrameType

import uvicorn

from app.logs import configure_logging, uvicorn_log_config
from app.main import create_app
from app.service import Service
from app.settings import Settings


class DrainingServer(uvicorn.Server):
    """uvicorn that marks the service as draining the moment a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.service.registry.begin_drain()
        super().handle_exit(sig, frame)


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=uvicorn_log_config(settings.log_format),
        # uvicorn hands this to asyncio.wait_for, which takes seconds as a float (0.5 means 0.5 s;
        # an int would turn anything under 1 s into "wait forever"), 0 means do not wait
        timeout_graceful_shutdown=settings.drain_timeout_s,  # type: ignore[arg-type]
        access_log=settings.access_log,
        timeout_keep_alive=int(settings.keep_alive_s),
    )
    DrainingServer(config, app.state.service).run()


if __name__ == "__main__":
    main()
