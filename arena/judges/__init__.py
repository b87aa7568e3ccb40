"""Judges: vision-language models that vote on pairs of outputs, one client class per protocol.

    base          JudgeRequest, JudgeReply, the Judge base class (one timed HTTP exchange)
    instructions  the question every protocol sends and the tolerant reading of the verdict
    openai_chat   "openai-chat": any chat-completions endpoint that takes images
    gemini        "gemini": Google's generateContent

JUDGE_CLASSES is the one list of protocols; config.JUDGE_PROTOCOLS names the same ones.
"""

from __future__ import annotations

import httpx

from arena.config import JudgeConfig
from arena.errors import ConfigError
from arena.judges.base import VERDICTS, Judge, JudgeReply, JudgeRequest
from arena.judges.gemini import GeminiJudge
from arena.judges.openai_chat import OpenAIChatJudge

JUDGE_CLASSES: dict[str, type[Judge]] = {
    OpenAIChatJudge.protocol: OpenAIChatJudge,
    GeminiJudge.protocol: GeminiJudge,
}


def make_judge(config: JudgeConfig, client: httpx.AsyncClient) -> Judge:
    """The client for one configured judge; its key is read from the environment here."""
    cls = JUDGE_CLASSES.get(config.protocol)
    if cls is None:
        raise ConfigError(
            f"judges.{config.name}",
            "protocol",
            f"unknown judge protocol {config.protocol!r} (known: {', '.join(JUDGE_CLASSES)})",
        )
    return cls(config, client, config.api_key())


__all__ = [
    "JUDGE_CLASSES",
    "VERDICTS",
    "GeminiJudge",
    "Judge",
    "JudgeReply",
    "JudgeRequest",
    "OpenAIChatJudge",
    "make_judge",
]
