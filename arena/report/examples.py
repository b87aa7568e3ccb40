"""The model page's "use it through the API" examples: curl, Python and JavaScript, runnable verbatim.

Each example is the exact text a user pastes: every value that comes from the config (the public URL,
the model's name) is quoted for its language here (shell words by shlex, string literals as JSON,
which Python and JavaScript both read), and the page only HTML-escapes it. The key is read from
$ARENA_API_KEY (`arena keys create NAME` makes one); edits read ./source.png.
"""

from __future__ import annotations

import json
import re
import shlex
import unicodedata

from arena.config import ModelConfig

GENERATE_PROMPT = "A lighthouse on a cliff at dawn, watercolor"
EDIT_PROMPT = "Give the person a full head of hair"  # plain words: safe inside "..." in a shell
SIZE = "1024x1024"
KEY_VARIABLE = "ARENA_API_KEY"
SOURCE_FILE = "source.png"
OUTPUT_FILE = "image.png"
# A value curl's -F reads literally: no ';' (type=, filename=), no '"' and no leading '@' or '<'
# (a file). Any other model name goes through --form-string, which takes the value as it is.
_PLAIN_FORM_VALUE = re.compile(r"^[A-Za-z0-9._:/+-][A-Za-z0-9._:/+=-]*$")

# Control, format and line/paragraph separator characters: escaped in literals, never written raw.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})

# The order the page shows them in.
EXAMPLE_TITLES = {
    "curl": "curl",
    "curl_edit": "curl: edit an image",
    "python": "Python (openai)",
    "javascript": "JavaScript (openai, Node)",
}


def _literal(text: str) -> str:
    """A string literal Python and JavaScript both read back as `text`: JSON's, with characters
    kept as they are (JSON's \\uD83D\\uDE00 pairs are two characters to Python) except the
    invisible ones, written \\uXXXX (all in the BMP, so both languages read them the same)."""
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in _INVISIBLE else c
        for c in json.dumps(text, ensure_ascii=False)
    )


def _curl_generate(name: str, base: str) -> str:
    body = json.dumps({"model": name, "prompt": GENERATE_PROMPT, "size": SIZE})
    return (
        f"curl {shlex.quote(base + '/images/generations')} \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(body)}\n"
    )


def _curl_edit(name: str, base: str) -> str:
    model = (
        f"-F {shlex.quote('model=' + name)}"
        if _PLAIN_FORM_VALUE.match(name)
        else f"--form-string {shlex.quote('model=' + name)}"
    )
    return (
        f"curl {shlex.quote(base + '/images/edits')} \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        f"  {model} \\\n"
        f"  -F image=@{SOURCE_FILE} \\\n"
        f'  -F prompt="{EDIT_PROMPT}" \\\n'
        f"  -F size={SIZE}\n"
    )


def _python(name: str, base: str, edit: bool) -> str:
    call = (
        "result = client.images.edit(\n"
        f"    model={_literal(name)},\n"
        f'    image=open("{SOURCE_FILE}", "rb"),\n'
        f"    prompt={_literal(EDIT_PROMPT)},\n"
        f'    size="{SIZE}",\n'
        ")\n"
        if edit
        else "result = client.images.generate(\n"
        f"    model={_literal(name)},\n"
        f"    prompt={_literal(GENERATE_PROMPT)},\n"
        f'    size="{SIZE}",\n'
        ")\n"
    )
    return (
        "import base64\n"
        "import os\n"
        "\n"
        "from openai import OpenAI\n"
        "\n"
        f'client = OpenAI(base_url={_literal(base)}, api_key=os.environ["{KEY_VARIABLE}"])\n'
        f"{call}"
        f'with open("{OUTPUT_FILE}", "wb") as out:\n'
        "    out.write(base64.b64decode(result.data[0].b64_json))\n"
    )


def _javascript(name: str, base: str, edit: bool) -> str:
    call = (
        "const result = await client.images.edit({\n"
        f"  model: {_literal(name)},\n"
        f'  image: fs.createReadStream("{SOURCE_FILE}"),\n'
        f"  prompt: {_literal(EDIT_PROMPT)},\n"
        f'  size: "{SIZE}",\n'
        "});\n"
        if edit
        else "const result = await client.images.generate({\n"
        f"  model: {_literal(name)},\n"
        f"  prompt: {_literal(GENERATE_PROMPT)},\n"
        f'  size: "{SIZE}",\n'
        "});\n"
    )
    return (
        "// example.mjs: npm install openai, then node example.mjs\n"
        'import fs from "node:fs";\n'
        'import OpenAI from "openai";\n'
        "\n"
        f"const client = new OpenAI({{ baseURL: {_literal(base)}, apiKey: process.env.{KEY_VARIABLE} }});\n"
        f"{call}"
        f'fs.writeFileSync("{OUTPUT_FILE}", Buffer.from(result.data[0].b64_json, "base64"));\n'
    )


def api_examples(model: ModelConfig, public_url: str) -> dict[str, str]:
    """The examples for one model through the gateway at `public_url` ([gateway] public_url).

    Keys: "curl" (always: a generation for a model that does text-to-image, else its edit),
    "curl_edit" (models that edit: multipart with -F image=@source.png), "python" and "javascript"
    (the openai SDKs with base_url set; a generation, or the edit for an edit-only model). Each
    value is the text to run, ending in a newline.
    """
    base = public_url.rstrip("/") + "/v1"
    edits = "edit" in model.tasks
    generates = "text-to-image" in model.tasks or not edits
    examples = {
        "curl": _curl_generate(model.name, base) if generates else _curl_edit(model.name, base)
    }
    if edits:
        examples["curl_edit"] = _curl_edit(model.name, base)
    examples["python"] = _python(model.name, base, edit=not generates)
    examples["javascript"] = _javascript(model.name, base, edit=not generates)
    return examples
