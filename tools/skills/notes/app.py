# The notes skill: short notes kept in the calling agent's memory, through host calls to
# agentos.mem_set / mem_get / mem_delete (the only door out of the sandbox).
#
# Memory layout (keys of the agent's memory):
#   notes:index   {"next": <next id as a number>, "notes": [{"id": "1", "title": "..."}, ...]}
#   notes:<id>    {"id": "<id>", "title": "...", "body": "..."}
#
# Ids come from the index's counter, not from `random` or the clock: the component is built with
# --stub-wasi, so the clock traps and the random seed is the same on every call.
import json
from typing import List

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.note_types import Note, NoteSummary

INDEX_KEY = "notes:index"


def note_key(note_id: str) -> str:
    return f"notes:{note_id}"


def call(tool: str, arguments: dict) -> dict:
    """Calls an agentos tool; a refusal or failure becomes an Err the caller sees as a tool error."""
    try:
        answer = host.call_tool(tool, json.dumps(arguments))
    except Err as refused:
        raise Err(f"{tool} failed: {refused.value}")
    try:
        result = json.loads(answer)
    except ValueError:
        raise Err(f"{tool} answered something that is not JSON: {answer[:200]}")
    if not isinstance(result, dict):
        raise Err(f"{tool} answered {type(result).__name__}, not an object")
    return result


def mem_get(key: str):
    """The value stored under `key`, or None when nothing is (mem_get says found=false)."""
    result = call("agentos.mem_get", {"key": key})
    return result.get("value") if result.get("found") else None


def mem_set(key: str, value) -> None:
    call("agentos.mem_set", {"key": key, "value": value})


def load_index() -> dict:
    index = mem_get(INDEX_KEY)
    if index is None:
        return {"next": 1, "notes": []}
    valid = (
        isinstance(index, dict)
        and isinstance(index.get("next"), int)
        and isinstance(index.get("notes"), list)
        and all(isinstance(n, dict) and isinstance(n.get("id"), str) for n in index["notes"])
    )
    if not valid:
        raise Err(f"the memory key {INDEX_KEY} holds something that is not a notes index; "
                  "delete it with agentos.mem_delete to start over")
    return index


def load_note(note_id: str):
    """The stored note, or None when its key is gone (a delete that stopped half-way)."""
    value = mem_get(note_key(note_id))
    if not isinstance(value, dict):
        return None
    return Note(id=note_id, title=str(value.get("title", "")), body=str(value.get("body", "")))


class WitWorld(wit_world.WitWorld):
    def add(self, title: str, body: str) -> Note:
        if not title.strip():
            raise Err("title must not be empty")
        index = load_index()
        note_id = str(index["next"])
        # The note first, then the index: if the second write fails, the note is only invisible.
        mem_set(note_key(note_id), {"id": note_id, "title": title, "body": body})
        index["next"] += 1
        index["notes"].append({"id": note_id, "title": title})
        mem_set(INDEX_KEY, index)
        host.log(host.Level.INFO, f"added note {note_id}")
        return Note(id=note_id, title=title, body=body)

    # Annotated with typing.List: from here on in the class body, `list` is this method.
    def list(self) -> List[NoteSummary]:
        return [NoteSummary(id=n["id"], title=str(n.get("title", ""))) for n in load_index()["notes"]]

    def search(self, query: str) -> List[Note]:
        # One mem_get per note: the manifest's host_calls limit bounds how many notes a search reads.
        needle = query.casefold()
        found = []
        for entry in load_index()["notes"]:
            note = load_note(entry["id"])
            if note is not None and (needle in note.title.casefold() or needle in note.body.casefold()):
                found.append(note)
        return found

    def delete(self, id: str) -> bool:
        index = load_index()
        kept = [n for n in index["notes"] if n["id"] != id]
        listed = len(kept) != len(index["notes"])
        if listed:
            # The index first: a note missing from it is gone for list and search even if the
            # delete below fails.
            index["notes"] = kept
            mem_set(INDEX_KEY, index)
        deleted = call("agentos.mem_delete", {"key": note_key(id)}).get("deleted") is True
        return listed or deleted
