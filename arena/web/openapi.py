"""The OpenAPI 3.1 description of the voting JSON API (served at /api/openapi.json)."""

from __future__ import annotations

from arena.web.battles import CHOICES

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict:
    return {
        str(code): {
            "description": _ERROR_TEXT[code],
            "content": {"application/json": {"schema": _ERROR}},
        }
        for code in codes
    }


_ERROR_TEXT = {
    400: "the body is not JSON",
    401: "no valid session cookie",
    403: "Origin or CSRF token missing or wrong",
    404: "no such battle in this session, or no battle left for this voter",
    409: "the battle already has its vote",
    410: "the battle expired",
    413: "the body is too large",
    415: "the body is not application/json",
    422: "the body is JSON but not a valid vote",
    429: "rate limited; see Retry-After",
}
_POST_PARAMETERS = [
    {
        "name": "X-CSRF-Token",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "the csrf_token from GET /api/session",
    },
    {
        "name": "Origin",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "this server's own origin",
    },
]


def openapi_document() -> dict:
    battle = {
        "type": "object",
        "required": ["battle_id", "expires_at", "challenge", "images"],
        "properties": {
            "battle_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "expires_at": {"type": "string", "format": "date-time"},
            "challenge": {
                "type": "object",
                "required": ["title", "task", "prompt", "prompt_format"],
                "properties": {
                    "title": {"type": "string"},
                    "task": {"enum": ["text-to-image", "edit"]},
                    "prompt": {"type": "string"},
                    "prompt_format": {"enum": ["text", "json"]},
                },
            },
            "images": {
                "type": "object",
                "required": ["a", "b", "source"],
                "properties": {
                    "a": {"type": "string"},
                    "b": {"type": "string"},
                    "source": {"type": ["string", "null"]},
                },
            },
        },
    }
    maker = {
        "type": "object",
        "required": ["model", "provider", "baseline"],
        "properties": {
            "model": {"type": "string"},
            "provider": {"type": "string"},
            "baseline": {"type": "boolean"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "arena blind voting API",
            "version": "1",
            "description": "Battles live on the server; the client sends only a battle id and a choice. "
            "Who made each image is revealed only in the reply to the battle's first vote.",
        },
        "paths": {
            "/api/health": {
                "get": {
                    "operationId": "health",
                    "responses": {
                        "200": {
                            "description": "the server is up",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["ok"],
                                        "properties": {"ok": {"const": True}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/api/session": {
                "get": {
                    "operationId": "session",
                    "responses": {
                        "200": {
                            "description": "the session's CSRF token; sets the HttpOnly session cookie when there is none",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["csrf_token"],
                                        "properties": {"csrf_token": {"type": "string"}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/api/battles": {
                "post": {
                    "operationId": "newBattle",
                    "parameters": _POST_PARAMETERS,
                    "description": "The session's open battle, or a new one chosen by the published sampling rule.",
                    "responses": {
                        "200": {
                            "description": "a battle",
                            "content": {"application/json": {"schema": battle}},
                        },
                        **_errors(401, 403, 404, 429),
                    },
                }
            },
            "/api/votes": {
                "post": {
                    "operationId": "vote",
                    "parameters": _POST_PARAMETERS,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["battle_id", "choice"],
                                    "properties": {
                                        "battle_id": {
                                            "type": "string",
                                            "pattern": "^[0-9a-f]{32}$",
                                        },
                                        "choice": {"enum": list(CHOICES)},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "the vote is stored; who made each image",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["battle_id", "choice", "reveal"],
                                        "properties": {
                                            "battle_id": {"type": "string"},
                                            "choice": {"enum": list(CHOICES)},
                                            "reveal": {
                                                "type": "object",
                                                "required": ["a", "b"],
                                                "properties": {"a": maker, "b": maker},
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        **_errors(400, 401, 403, 404, 409, 410, 413, 415, 422, 429),
                    },
                }
            },
            "/img/{battle_id}/{slot}": {
                "get": {
                    "operationId": "image",
                    "parameters": [
                        {
                            "name": "battle_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "slot",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": ["a", "b", "s"]},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "the blind derivative (WebP, Cache-Control: no-store)",
                            "content": {
                                "image/webp": {"schema": {"type": "string", "format": "binary"}}
                            },
                        },
                        **_errors(404),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                }
            }
        },
    }
