"""Canned text answers of the local OpenAI server: planner JSON and short reports, shaped by prompt markers.

`[[images:N]]` sets the number of planned images (else "N images" in the text, else 2); `[[plan:fenced|prose|empty|
garbage|blank-prompts]]` changes the planner's answer; `[[imageK:X]]` appends `[[X]]` to the K-th planned prompt;
`[[text:html|json]]` changes the report's form.
"""

import json
import re
from typing import Any

MARKER = re.compile(r"\[\[[^\[\]]*\]\]")


def is_planner(body: dict, instructions: str) -> bool:
    fmt = ((body.get("text") or {}).get("format") or {}).get("type")
    return fmt == "json_schema" or "JSON" in instructions


def plan_text(text: str) -> str:
    subject = subject_of(text)
    count = _plan_count(text)
    excerpt = strip_markers(text)[:300].strip()
    injections = {int(k): v for k, v in re.findall(r"\[\[image(\d+):([^\[\]]+)\]\]", text)}
    images = []
    for i in range(1, count + 1):
        prompt = f"{subject} image {i} of {count}: {excerpt}"
        if i in injections:
            prompt += f" [[{injections[i]}]]"
        images.append({"label": f"{subject} {i}", "prompt": prompt})
    if "[[plan:blank-prompts]]" in text:
        images = [images[0]] + [{"prompt": "   "} for _ in images[1:]]
        if len(images) > 1:
            images[1] = {"prompt": images[1]["prompt"]}
    if "[[plan:empty]]" in text:
        images = []
    plan = json.dumps({"images": images})
    if "[[plan:garbage]]" in text:
        return "I cannot produce JSON today."
    if "[[plan:fenced]]" in text:
        return f"```json\n{plan}\n```"
    if "[[plan:prose]]" in text:
        return f"Here is the plan:\n{plan}\nHope this helps."
    return plan


def _plan_count(text: str) -> int:
    marker = re.search(r"\[\[images:(\d+)\]\]", text)
    if marker:
        return int(marker.group(1))
    spoken = re.search(r"(\d+)\s+(?:[a-z-]+\s+){0,2}(?:images?|pictures?|visuals?)\b", strip_markers(text), re.IGNORECASE)
    return int(spoken.group(1)) if spoken else 2


def subject_of(text: str) -> str:
    match = re.search(r"^Step Name:\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
    return strip_markers(match.group(1)).strip() if match else "Image"


def report_text(text: str) -> str:
    excerpt = " ".join(strip_markers(text).split())[:240]
    if "[[text:html]]" in text:
        return f"<!DOCTYPE html><html><body><h1>{subject_of(text)}</h1><p>{excerpt}</p></body></html>"
    if "[[text:json]]" in text:
        return json.dumps({"subject": subject_of(text), "summary": excerpt})
    return f"# {subject_of(text)}\n\nA short report written from the context: {excerpt}\n\nIt closes with next steps."


def flatten_input(value: Any) -> str:
    """The text of a Responses `input`: a string, or message items with text or content parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(flatten_input(item) for item in value)
    if isinstance(value, dict):
        if "text" in value:
            return str(value["text"])
        return flatten_input(value.get("content"))
    return ""


def strip_markers(text: str) -> str:
    return MARKER.sub("", text)
