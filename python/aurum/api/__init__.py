"""``aurum api``: HTTP, WebSocket and a status page over the daemon's shared-memory output.

A separate process from the daemon that only reads ``/dev/shm/<shm.name>`` (through
``aurum.consumer.ShmReader``), so it can be restarted, or crash, without touching the feed.
Modules: ``app`` (routes), ``hub`` (the one reader, availability, change events), ``views``
(segment dicts -> response bodies), ``models`` (the schemas), ``stream`` (WebSocket fan-out),
``auth`` (bearer token, origin check, log redaction), ``cli`` (uvicorn on uvloop),
``static/index.html`` (the page).

The app is ``aurum.api.app.create_app``; this package imports nothing itself, so building
the ``aurum`` command line never loads FastAPI.
"""
