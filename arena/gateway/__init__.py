"""The gateway: an OpenAI-compatible images API in front of every provider, routed by what arena measured.

create_app(settings) builds one ASGI app (Starlette, the voting server's stack) with its state on
app.state. Its modules, each one concern:

    replies     GatewayError and OpenAI's error shape; the reply body and headers of a success
    requests    a generations / edits request (JSON or multipart) read and checked into arena's words
    routing     the order a model's routes are tried in: a RoutePolicy over measured figures (pure)
    breaker     one circuit breaker per route: closed, open, half-open
    figures     each route's success-weighted latency over the window, read from the store and cached
    forwarding  one request through its routes: fallback on retryable failures, every attempt judged
    traffic     every upstream attempt written to the attempts table (source "traffic")
    auth        gateway keys: the Bearer check, budgets, rates and spend (store/keys.py keeps them)
    files       response_format=url: images served at /v1/files/{opaque id} until they expire
    playground  /playground: try a model (or two side by side) in the browser
"""

from __future__ import annotations
