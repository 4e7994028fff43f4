"""The review page's HTML: groups as thumbnail grids, largest first, and a form per action (pure)."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote


def _form(action: str, token: str, fields: str, button: str, css: str = "") -> str:
    return (
        f'<form method="post" action="/{action}" class="{css}">'
        f'<input type="hidden" name="csrf" value="{escape(token)}">{fields}'
        f'<button type="submit">{escape(button)}</button></form>'
    )


def render(document: dict[str, Any], token: str, message: str = "") -> str:
    groups = sorted(document.get("groups", []), key=lambda g: -len(g["members"]))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>facetrack review</title><style>"
        "body{font-family:sans-serif;margin:1em;background:#fafafa}"
        ".group{background:#fff;border:1px solid #ccc;margin:0 0 1em;padding:.5em}"
        ".faces{display:flex;flex-wrap:wrap;gap:4px}.face{text-align:center}"
        ".face img{width:96px;height:96px;object-fit:cover;display:block}"
        "form{display:inline-block;margin:.2em .5em .2em 0}.msg{background:#ffd;padding:.4em}"
        ".error{background:#fdd}"
        "</style></head><body><h1>facetrack review</h1>"
    ]
    if message:
        kind = "msg error" if message.startswith("error:") else "msg"
        parts.append(f'<p class="{kind}" id="message">{escape(message)}</p>')
    parts.append(_form("train", token, "", "train and publish", "train"))
    for group in groups:
        gid = escape(group["id"])
        named = f" - named {escape(group['named'])}" if group.get("named") else ""
        probably = f" - probably {escape(group['probably'])}" if group.get("probably") else ""
        devices = escape(", ".join(group.get("devices") or []))
        parts.append(
            f'<div class="group" id="group-{gid}">'
            f"<h2>{gid}: {len(group['members'])} faces{probably}{named}</h2>"
            f"<p>devices: {devices or '-'}; seen {escape(str(group.get('first_seen') or '-'))} .. "
            f"{escape(str(group.get('last_seen') or '-'))}</p>"
        )
        parts.append(
            _form(
                "name",
                token,
                f'<input type="hidden" name="group" value="{gid}">'
                '<input name="name" placeholder="name" class="name-input">',
                "name",
                "name",
            )
        )
        parts.append(
            _form(
                "merge",
                token,
                f'<input type="hidden" name="group" value="{gid}">'
                '<input name="into" placeholder="merge into group" class="merge-input">',
                "merge",
                "merge",
            )
        )
        parts.append(
            _form("discard", token, f'<input type="hidden" name="group" value="{gid}">', "discard", "discard")
        )
        parts.append('<div class="faces">')
        for member in group["members"]:
            src = "/face/" + quote(member)
            fields = (
                f'<input type="hidden" name="group" value="{gid}">'
                f'<input type="hidden" name="face" value="{escape(member)}">'
            )
            parts.append(
                f'<div class="face"><img src="{src}" alt="{escape(member)}">'
                f"{_form('move-out', token, fields, 'move out', 'move-out')}</div>"
            )
        parts.append("</div></div>")
    ungrouped = document.get("ungrouped", [])
    parts.append(f"<h2>ungrouped: {len(ungrouped)}</h2><div class='faces'>")
    for member in ungrouped:
        parts.append(f'<div class="face"><img src="/face/{quote(member)}" alt="{escape(member)}"></div>')
    parts.append("</div></body></html>")
    return "".join(parts)
