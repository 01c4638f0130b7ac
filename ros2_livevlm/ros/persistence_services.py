# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The memory file: loaded at configure, ``~/save_memory``, ``~/load_memory``, saved on stop.

One file holds every camera's memory, each under its camera name
(:func:`~ros2_livevlm.persistence.save_memories`). The worker owns the engines, so saves
and loads run on its thread between clips (:meth:`~.worker.Worker.run_task`); a service
callback only waits for them. At configure no worker runs yet, and the file is loaded
directly.

A refused file (any :class:`~ros2_livevlm.persistence.MemoryFileError` reason) leaves
every camera with its memory; the response names the reason. A ``memory_file`` that was
refused is never overwritten by ``save_on_shutdown`` (it may be the only copy of a memory
a newer version or another model can read): the node keeps it and logs why.

Time after a load: each camera's sampler continues from the memory's newest stamp
(:meth:`~.feed.CameraFeed.continue_from`); a frame stamped earlier by more than a sample
period is a time jump (the camera clock restarted), which resets that camera's memory.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
import os
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node

from .errors import ErrorLog
from .errors import guarded
from .feed import CameraFeed
from .params import NodeSettings
from .qos import REQUEST_QOS
from .worker import Worker
from .. import srv as _srv
from ..persistence import load_memories
from ..persistence import MemoryFileError
from ..persistence import MemoryFileInfo
from ..persistence import save_memories

FILE_TIMEOUT_S = 120.0
"""How long a service waits for the worker to finish its clip and the save or load, s."""


def load_at_configure(settings: NodeSettings, engines: dict[str, Any], log: Any,
                      refused: dict[str, str]) -> None:
    """
    Load ``memory_file`` into the cameras it holds, if it exists (no worker runs yet).

    A refusal is logged and recorded in ``refused`` (path -> reason); the cameras start
    empty and the node configures all the same.
    """
    path = settings.memory_file
    if not path:
        return
    if not os.path.exists(path):
        log.info(f'memory_file {path} does not exist yet: the cameras start empty')
        return
    try:
        info = load_memories(path, engines, held_only=True)
    except MemoryFileError as err:
        refused[path] = err.reason
        log.error(f'memory_file refused ({err.reason}): {err}; the cameras start empty')
        return
    log.info(f'loaded {_describe(info)}')


def _describe(info: MemoryFileInfo) -> str:
    return (f'the memory of {", ".join(info.names)} from {info.path} '
            f'({info.num_bytes} bytes, {info.elapsed_s * 1e3:.1f} ms)')


class MemoryFileServer:
    """
    ``~/save_memory`` and ``~/load_memory`` of one activation, and the save on stop.

    Args:
        node: the node that owns the services.
        settings: the node's settings (``memory_file``, ``save_on_shutdown``).
        feeds: camera name -> feed (continued from a loaded memory's newest stamp).
        worker: the started worker that owns ``worker.engines``.
        refused: path -> reason of memory files refused at load (shared with the node).
        errors: where exceptions caught in the callbacks are reported.
        group: callback group of the services (reentrant).
    """

    def __init__(self, node: Node, settings: NodeSettings, feeds: dict[str, CameraFeed],
                 worker: Worker, refused: dict[str, str], errors: ErrorLog,
                 group: CallbackGroup) -> None:
        self._node = node
        self._settings = settings
        self._feeds = feeds
        self._worker = worker
        self._refused = refused
        self._services = [
            node.create_service(_srv.SaveMemory, '~/save_memory',
                                guarded(errors, '~/save_memory', self._on_save, _failed),
                                qos_profile=REQUEST_QOS, callback_group=group),
            node.create_service(_srv.LoadMemory, '~/load_memory',
                                guarded(errors, '~/load_memory', self._on_load, _failed),
                                qos_profile=REQUEST_QOS, callback_group=group),
        ]

    def close(self) -> None:
        """Destroy the services."""
        for service in self._services:
            self._node.destroy_service(service)

    def save_on_stop(self) -> None:
        """Save all cameras to ``memory_file`` if ``save_on_shutdown``."""
        settings, log = self._settings, self._node.get_logger()
        path = settings.memory_file
        if not settings.save_on_shutdown:
            return
        if path in self._refused:
            log.warning(f'save_on_shutdown: {path} is kept as it is, not overwritten: it was '
                        f'refused at load ({self._refused[path]}); save elsewhere with '
                        '~/save_memory')
            return
        try:
            info = self._run(lambda: save_memories(self._worker.engines, path))
        except (OSError, ValueError, RuntimeError, FutureTimeout) as err:
            log.error(f'save_on_shutdown: the memory was not saved to {path}: {err}')
            return
        log.info(f'save_on_shutdown: saved {_describe(info)}')

    def _run(self, task: Any) -> Any:
        return self._worker.run_task(task).result(FILE_TIMEOUT_S)

    def _target(self, request: Any) -> tuple[str, list[str]]:
        """
        Return the request's path and cameras.

        Raises:
            ValueError: no path and no ``memory_file``, or an unknown camera.
        """
        path = os.path.expanduser(request.path.strip()) or self._settings.memory_file
        if not path:
            raise ValueError('no path: give one in the request or set the memory_file '
                             'parameter')
        names = list(self._feeds)
        if request.camera and request.camera not in self._feeds:
            raise ValueError(f'unknown camera {request.camera!r}; cameras: {", ".join(names)}')
        return path, [request.camera] if request.camera else names

    def _on_save(self, request: Any, response: Any) -> Any:
        try:
            path, names = self._target(request)
            engines = self._worker.engines
            info = self._run(lambda: save_memories({n: engines[n] for n in names}, path))
        except (OSError, ValueError, RuntimeError, FutureTimeout) as err:
            response.error = str(err) or type(err).__name__
            return response
        self._refused.pop(path, None)  # saved on purpose: the node's own file now
        response.success, response.path, response.cameras = True, str(info.path), list(names)
        response.file_size, response.save_time = info.num_bytes, info.elapsed_s
        self._node.get_logger().info(f'saved {_describe(info)}')
        return response

    def _on_load(self, request: Any, response: Any) -> Any:
        try:
            path, names = self._target(request)
            info = self._run(lambda: self._load(path, names, held_only=not request.camera))
        except MemoryFileError as err:
            if path == self._settings.memory_file:
                self._refused[path] = err.reason
            response.reason, response.error, response.path = err.reason, str(err), path
            self._node.get_logger().error(f'~/load_memory refused ({err.reason}): {err}')
            return response
        except ValueError as err:
            response.reason, response.error = 'bad_request', str(err)
            return response
        except (RuntimeError, FutureTimeout) as err:
            response.reason, response.error = 'not_active', str(err) or 'timed out'
            return response
        self._refused.pop(path, None)
        response.success, response.path, response.cameras = True, str(info.path), list(info.names)
        response.file_size, response.load_time = info.num_bytes, info.elapsed_s
        self._node.get_logger().info(f'loaded {_describe(info)}')
        return response

    def _load(self, path: str, names: list[str], *, held_only: bool) -> MemoryFileInfo:
        """Worker thread: load, then continue each loaded camera's timeline."""
        engines = self._worker.engines
        info = load_memories(path, {n: engines[n] for n in names}, held_only=held_only)
        for name in info.names:
            self._feeds[name].continue_from(engines[name].stats().newest_stamp)
            self._worker.memory_replaced(name)
        return info


def _failed(request: Any, response: Any) -> Any:
    response.success, response.error = False, 'internal error (see the node log)'
    return response
