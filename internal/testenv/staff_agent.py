#!/usr/bin/python3
"""An independent E2EE Matrix client for carebridge's integration tests.

It plays a member of staff using a real Matrix client (matrix-nio + libolm), so the
bridge's encryption is checked by code that shares nothing with mautrix. It speaks JSON
lines: events on stdout, commands on stdin (see internal/testenv/nio.go).

Usage: staff_agent.py HOMESERVER_URL USER_ID PASSWORD STORE_DIR
(or the env vars AGENT_HOMESERVER, AGENT_USER_ID, AGENT_PASSWORD, AGENT_STORE).
"""

import asyncio
import hashlib
import io
import json
import os
import sys
import time
import traceback

from nio import (
    AsyncClient,
    UploadResponse,
    AsyncClientConfig,
    InviteMemberEvent,
    JoinError,
    JoinedMembersError,
    KeysQueryError,
    KeysUploadError,
    LoginError,
    MegolmEvent,
    RoomCreateError,
    MessageDirection,
    RoomMessage,
    RoomMessagesError,
    RoomPreset,
    RoomReadMarkersError,
    RoomSendError,
    RoomTypingError,
    SyncError,
    ReceiptEvent,
    RoomGetStateEventResponse,
    UnknownEvent,
)
from nio.crypto import decrypt_attachment

SYNC_TIMEOUT_MS = 500
# An undecryptable event is held this long (its key may still be on its way in a
# to-device message) before it is reported; it is still decrypted if the key comes later.
UNDECRYPTABLE_GRACE_S = 3.0
UNDECRYPTABLE_GIVE_UP_S = 60.0
ROOM_WAIT_S = 20.0
# Dendrite sometimes leaves a just-joined room out of the next incremental /sync; after
# this long the agent syncs again from scratch, which lists every joined room.
RESYNC_AFTER_S = 3.0
# /sync can leave events out without saying so: Dendrite, restarted, hands a client that
# synced through the outage a token past events that are in the room (measured:
# TestDendriteRestartKeepsAcknowledgedEvents), and a timeline with more events than the
# filter's limit comes back "limited". A client then pages back (/messages), as Element
# does: after a limited timeline, after a from-scratch sync, and for GAP_WATCH_S after
# the sync loop recovers from a failure (every BACKFILL_EVERY_S, as the server catches up).
GAP_WATCH_S = 20.0
BACKFILL_EVERY_S = 2.0
BACKFILL_PAGE = 100
BACKFILL_MAX_PAGES = 10
# Paging back ends after this many events in a row that the agent saw before the gap.
BACKFILL_KNOWN_RUN = 20
# A sync loop that has not completed a round for this long is reported on stderr (which
# a failed wait prints), with the step it is in, so that a test that times out waiting
# for an event says whether the agent's sync loop was stuck, and where.
STALL_REPORT_S = 8.0


def now_ms():
    return int(time.time() * 1000)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def emit_error(message, **extra):
    obj = {"type": "error", "message": message}
    obj.update(extra)
    emit(obj)


def guarded(func):
    """Reports a callback's exception instead of letting it abort nio's sync handling."""
    if asyncio.iscoroutinefunction(func):
        async def wrapper(*args):
            try:
                return await func(*args)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                emit_error(f"{func.__name__}: {e!r}", traceback=traceback.format_exc())
    else:
        def wrapper(*args):
            try:
                return func(*args)
            except Exception as e:
                emit_error(f"{func.__name__}: {e!r}", traceback=traceback.format_exc())
    wrapper.__name__ = func.__name__
    return wrapper


def log(message):
    sys.stderr.write(time.strftime("%H:%M:%S ") + message + "\n")
    sys.stderr.flush()


class Agent:
    def __init__(self, homeserver, user_id, password, store_dir):
        self.password = password
        config = AsyncClientConfig(
            encryption_enabled=True,
            store_sync_tokens=False,
            max_timeouts=3,
            request_timeout=30,
        )
        os.makedirs(store_dir, exist_ok=True)
        self.client = AsyncClient(homeserver, user_id, store_path=store_dir, config=config)
        # Serialises key upload/query/claim and sends: nio refuses overlapping ones.
        self.crypto_lock = asyncio.Lock()
        # Notified after every processed sync, so waits need no polling.
        self.synced = asyncio.Condition()
        self.seen_events = set()
        self.joined = set()
        self.invited = set()
        # event_id -> (room, event, first_seen, reported)
        self.pending = {}
        # room_id -> devices the current outbound session was shared with
        self.shared_with = {}
        self.resync = False
        # event_id -> when a /sync (or a page back) first showed it (monotonic)
        self.timeline_seen = {}
        # room_id -> events seen before this moment (monotonic) end a page back
        self.gaps = {}
        self.last_sync_ok = time.monotonic()
        self.outage_started = None
        self.gap_watch_until = 0.0
        self.gap_watch_since = 0.0
        self.last_backfill = 0.0
        # What the sync loop is doing, and since when (monotonic): see STALL_REPORT_S.
        self.step = ("starting", time.monotonic())
        self.stall_reported = False
        self.stopping = asyncio.Event()
        self.tasks = set()

    # ---- events -------------------------------------------------------------

    @guarded
    def on_message(self, room, event, backfilled=False):
        if event.event_id in self.seen_events:
            return
        self.seen_events.add(event.event_id)
        self.pending.pop(event.event_id, None)
        content = event.source.get("content", {})
        line = {
            "type": "message",
            "room_id": room.room_id,
            "event_id": event.event_id,
            "sender": event.sender,
            "body": content.get("body", getattr(event, "body", "")),
            "msgtype": content.get("msgtype", ""),
            "encrypted": bool(getattr(event, "decrypted", False)),
            "server_ts": event.server_timestamp,
            "received_ms": now_ms(),
            "backfilled": backfilled,
        }
        if "file" in content or "url" in content:
            # Media: download (and decrypt) it, so tests compare the exact bytes.
            self.spawn(self.emit_media(line, content))
            return
        emit(line)

    @guarded
    async def emit_media(self, line, content):
        info = content.get("info") or {}
        line["mimetype"] = info.get("mimetype", "")
        file = content.get("file")
        mxc = file["url"] if file else content.get("url", "")
        # Authenticated media (MSC3916): Dendrite freezes the unauthenticated endpoints.
        server, media_id = mxc[len("mxc://"):].split("/", 1)
        url = f"{self.client.homeserver}/_matrix/client/v1/media/download/{server}/{media_id}"
        async with self.client.client_session.get(
            url, headers={"Authorization": f"Bearer {self.client.access_token}"}
        ) as resp:
            data = await resp.read()
            status = resp.status
        if status != 200:
            line["media_error"] = f"HTTP {status}: {data[:200]!r}"
        else:
            if file:
                data = decrypt_attachment(data, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
            line["media_sha256"] = hashlib.sha256(data).hexdigest()
            line["media_size"] = len(data)
        line["media_encrypted"] = bool(file)
        emit(line)

    @guarded
    def on_other(self, room, event, encrypted=False):
        """Reports a room event that is not a message (e.g. a message send status)."""
        if event.event_id in self.seen_events:
            return
        source = getattr(event, "source", None) or {}
        event_type = source.get("type", "")
        if not event_type or event_type == "m.room.encrypted":
            return
        self.seen_events.add(event.event_id)
        emit({
            "type": "event",
            "room_id": room.room_id,
            "event_id": event.event_id,
            "sender": event.sender,
            "event_type": event_type,
            "content": source.get("content", {}),
            "encrypted": encrypted,
            "received_ms": now_ms(),
        })

    @guarded
    def on_receipt(self, room, event):
        """Reports read receipts, e.g. the patient's ghost reading staff messages."""
        for receipt in event.receipts:
            emit({
                "type": "event",
                "room_id": room.room_id,
                "event_id": receipt.event_id,
                "sender": receipt.user_id,
                "event_type": "m.receipt." + receipt.receipt_type,
                "content": {"ts": receipt.timestamp},
                "encrypted": False,
                "received_ms": now_ms(),
            })

    @guarded
    def on_megolm(self, room, event):
        if event.event_id in self.seen_events or event.event_id in self.pending:
            return
        self.pending[event.event_id] = [room, event, time.monotonic(), False]

    def retry_pending(self):
        for event_id, entry in list(self.pending.items()):
            room, event, first_seen, reported = entry
            try:
                decrypted = self.client.decrypt_event(event)
            except Exception:
                decrypted = None
            if decrypted is not None and isinstance(decrypted, RoomMessage):
                self.on_message(room, decrypted, getattr(event, "backfilled", False))
                continue
            if decrypted is not None:
                self.on_other(room, decrypted, True)
                del self.pending[event_id]
                continue
            age = time.monotonic() - first_seen
            if not reported and age >= UNDECRYPTABLE_GRACE_S:
                entry[3] = True
                emit({
                    "type": "undecryptable",
                    "room_id": room.room_id,
                    "event_id": event.event_id,
                    "sender": event.sender,
                    "session_id": event.session_id,
                })
            if age >= UNDECRYPTABLE_GIVE_UP_S:
                del self.pending[event_id]

    @guarded
    async def on_invite(self, room, event):
        if not isinstance(event, InviteMemberEvent):
            return
        if event.state_key != self.client.user_id or event.membership != "invite":
            return
        if room.room_id in self.invited or room.room_id in self.joined:
            return
        self.invited.add(room.room_id)
        emit({"type": "invited", "room_id": room.room_id, "sender": event.sender})
        self.spawn(self.join(room.room_id))

    @guarded
    async def join(self, room_id):
        for attempt in range(5):
            resp = await self.client.join(room_id)
            if not isinstance(resp, JoinError):
                await self.wait_room(lambda: room_id in self.client.rooms, room_id)
                return
            log(f"join {room_id} failed (attempt {attempt + 1}): {resp}")
            await asyncio.sleep(0.5)
        emit_error(f"failed to join {room_id}: {resp}", room_id=room_id)

    def note_joined_rooms(self):
        for room_id in self.client.rooms:
            if room_id not in self.joined:
                self.joined.add(room_id)
                emit({"type": "joined", "room_id": room_id})

    # ---- sync loop ----------------------------------------------------------

    def at(self, step):
        self.step = (step, time.monotonic())

    async def maintain_keys(self):
        c = self.client
        self.at("waiting for the crypto lock")
        async with self.crypto_lock:
            if c.should_upload_keys:
                self.at("keys_upload")
                resp = await c.keys_upload()
                if isinstance(resp, KeysUploadError):
                    log(f"keys_upload: {resp}")
            if c.should_query_keys:
                self.at("keys_query")
                resp = await c.keys_query()
                if isinstance(resp, KeysQueryError):
                    log(f"keys_query: {resp}")
            if c.should_claim_keys:
                self.at("keys_claim")
                await c.keys_claim(c.get_users_for_key_claiming())
            self.at("sending to-device messages")
            await c.send_to_device_messages()

    async def sync_once(self, first=False):
        if self.resync:
            self.resync = False
            self.client.next_batch = None
            first = True
        self.at("sync")
        resp = await self.client.sync(
            timeout=0 if first else SYNC_TIMEOUT_MS, full_state=first or None
        )
        if isinstance(resp, SyncError):
            raise RuntimeError(f"sync failed: {resp}")
        synced_at = time.monotonic()
        for room_id, info in resp.rooms.join.items():
            for event in info.timeline.events:
                if getattr(event, "event_id", None):
                    self.timeline_seen.setdefault(event.event_id, synced_at)
            # A room joined in this sync starts limited: what came before the join is
            # not the agent's to see. A from-scratch sync is limited in every room.
            if info.timeline.limited and room_id in self.joined:
                since = self.last_sync_ok
                self.gaps[room_id] = min(self.gaps.get(room_id, since), since)
        if self.stall_reported:
            self.stall_reported = False
            log(f"sync loop moving again after {synced_at - self.last_sync_ok:.1f}s")
        self.last_sync_ok = synced_at
        await self.maintain_keys()
        self.at("handling the sync")
        self.note_joined_rooms()
        self.retry_pending()
        async with self.synced:
            self.synced.notify_all()
        self.at("between syncs")

    async def watch_stalls(self):
        """Reports (once per stall) a sync loop that has not completed a round for
        STALL_REPORT_S, with its step. If nothing is reported while a wait times out, the
        loop kept completing syncs and /sync did not show the event, or the whole event
        loop was blocked (then this task could not run either)."""
        while not self.stopping.is_set():
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if not self.stall_reported and now - self.last_sync_ok >= STALL_REPORT_S:
                self.stall_reported = True
                step, since = self.step
                log(f"sync loop stalled: no completed sync for {now - self.last_sync_ok:.1f}s, "
                    f"in step {step!r} for {now - since:.1f}s")

    async def sync_loop(self):
        failures = 0
        while not self.stopping.is_set():
            try:
                await self.sync_once()
                if failures:
                    log(f"sync recovered after {failures} failures: paging back for {GAP_WATCH_S}s")
                    self.gap_watch_since = self.outage_started
                    self.gap_watch_until = time.monotonic() + GAP_WATCH_S
                    self.outage_started = None
                failures = 0
                await self.backfill_gaps()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                failures += 1
                if self.outage_started is None:
                    self.outage_started = self.last_sync_ok
                emit_error(f"sync loop: {e!r}", traceback=traceback.format_exc())
                log(f"sync loop failed ({failures} in a row): {e!r}")
                await asyncio.sleep(min(0.2 * failures, 2.0))

    async def backfill_gaps(self):
        """Pages back through rooms whose /sync may have left events out (see GAP_WATCH_S)."""
        now = time.monotonic()
        if now < self.gap_watch_until and now - self.last_backfill >= BACKFILL_EVERY_S:
            self.last_backfill = now
            for room_id in self.joined:
                since = self.gap_watch_since
                self.gaps[room_id] = min(self.gaps.get(room_id, since), since)
        gaps, self.gaps = self.gaps, {}
        paged = bool(gaps)
        for room_id, since in list(gaps.items()):
            if room_id in self.client.rooms:
                try:
                    await self.backfill(room_id, since)
                except BaseException:
                    # Kept for the next round; the sync loop counts the failure.
                    for pending_room, pending_since in gaps.items():
                        self.gaps[pending_room] = min(self.gaps.get(pending_room, pending_since), pending_since)
                    raise
            del gaps[room_id]
        if paged:
            self.retry_pending()

    async def backfill(self, room_id, since):
        """Pages back from the latest sync token, handing the room events (not state) that
        /sync did not show to the same callbacks, until BACKFILL_KNOWN_RUN events in a row
        seen before since, or the agent's own join."""
        c = self.client
        room = c.rooms[room_id]
        token = c.next_batch
        known_run = 0
        found = 0
        for _ in range(BACKFILL_MAX_PAGES):
            resp = await c.room_messages(room_id, token, direction=MessageDirection.back, limit=BACKFILL_PAGE)
            if isinstance(resp, RoomMessagesError):
                raise RuntimeError(f"paging back in {room_id} failed: {resp}")
            unseen = []
            joined_here = False
            for event in resp.chunk:
                event_id = getattr(event, "event_id", None)
                source = getattr(event, "source", None) or {}
                if source.get("type") == "m.room.member" and source.get("state_key") == c.user_id \
                        and (source.get("content") or {}).get("membership") == "join":
                    joined_here = True
                    break
                seen_at = self.timeline_seen.get(event_id)
                if seen_at is None:
                    if event_id and "state_key" not in source:
                        unseen.append(event)
                    known_run = 0
                elif seen_at < since:
                    known_run += 1
                    if known_run >= BACKFILL_KNOWN_RUN:
                        break
            # Oldest first, as a timeline would have shown them.
            for event in reversed(unseen):
                self.timeline_seen[event.event_id] = time.monotonic()
                found += 1
                if isinstance(event, RoomMessage):
                    self.on_message(room, event, True)
                elif isinstance(event, MegolmEvent):
                    event.backfilled = True
                    self.on_megolm(room, event)
                elif isinstance(event, UnknownEvent):
                    self.on_other(room, event)
            if joined_here or known_run >= BACKFILL_KNOWN_RUN or not resp.chunk or not resp.end or resp.end == token:
                break
            token = resp.end
        if found:
            log(f"paging back in {room_id} found {found} events /sync had not shown")

    async def wait_for(self, predicate, timeout):
        async def waiter():
            async with self.synced:
                await self.synced.wait_for(predicate)

        await asyncio.wait_for(waiter(), timeout)

    async def wait_room(self, predicate, room_id):
        """Waits until /sync shows the room as predicate wants it."""
        try:
            await self.wait_for(predicate, RESYNC_AFTER_S)
            return
        except asyncio.TimeoutError:
            pass
        log(f"room {room_id} not in /sync after {RESYNC_AFTER_S}s: syncing from scratch")
        self.resync = True
        try:
            await self.wait_for(predicate, ROOM_WAIT_S)
        except asyncio.TimeoutError:
            raise RuntimeError(f"room {room_id} never appeared in /sync")

    # ---- commands -----------------------------------------------------------

    async def cmd_send(self, req):
        room_id = req["room_id"]
        c = self.client
        await self.wait_room(lambda: room_id in c.rooms, room_id)
        content = {"msgtype": req.get("msgtype", "m.text"), "body": req["body"]}
        if req.get("formatted_body"):
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = req["formatted_body"]
        await self.ensure_encryption_known(room_id)
        async with self.crypto_lock:
            room = c.rooms[room_id]
            if room.encrypted:
                await self.refresh_room_devices(room_id)
            started = now_ms()
            resp = await c.room_send(
                room_id, "m.room.message", content, ignore_unverified_devices=True
            )
        if isinstance(resp, RoomSendError):
            raise RuntimeError(f"send failed: {resp}")
        # sent_ms is when the client began sending (what a person's "send" is);
        # acked_ms is when the homeserver answered, which can be after the event
        # already reached other clients' /sync.
        return {"event_id": resp.event_id, "sent_ms": started, "acked_ms": now_ms()}

    async def cmd_send_file(self, req):
        """Uploads a file (encrypted in encrypted rooms) and sends it as m.image or m.file."""
        room_id = req["room_id"]
        c = self.client
        await self.wait_room(lambda: room_id in c.rooms, room_id)
        with open(req["path"], "rb") as f:
            data = f.read()
        mimetype = req.get("mimetype", "application/octet-stream")
        await self.ensure_encryption_known(room_id)
        encrypted = c.rooms[room_id].encrypted
        resp, keys = await c.upload(
            lambda *_: io.BytesIO(data), content_type=mimetype, filename=req["filename"],
            encrypt=encrypted, filesize=len(data),
        )
        if not isinstance(resp, UploadResponse):
            raise RuntimeError(f"upload failed: {resp}")
        msgtype = "m.image" if mimetype.startswith("image/") else "m.file"
        content = {"msgtype": msgtype, "body": req["filename"],
                   "info": {"mimetype": mimetype, "size": len(data)}}
        if encrypted:
            keys["url"] = resp.content_uri
            content["file"] = keys
        else:
            content["url"] = resp.content_uri
        async with self.crypto_lock:
            if encrypted:
                await self.refresh_room_devices(room_id)
            started = now_ms()
            sent = await c.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True)
        if isinstance(sent, RoomSendError):
            raise RuntimeError(f"send failed: {sent}")
        return {"event_id": sent.event_id, "sent_ms": started, "acked_ms": now_ms()}

    async def cmd_typing(self, req):
        """Starts or stops typing in a room (m.typing), as a client does while one writes."""
        room_id = req["room_id"]
        resp = await self.client.room_typing(
            room_id, typing_state=bool(req.get("typing", True)), timeout=int(req.get("timeout_ms", 30000))
        )
        if isinstance(resp, RoomTypingError):
            raise RuntimeError(f"typing failed: {resp}")
        return {}

    async def cmd_read(self, req):
        """Marks a room read up to an event (m.read receipt and m.fully_read), as a client
        does when the event is on screen."""
        resp = await self.client.room_read_markers(req["room_id"], req["event_id"], req["event_id"])
        if isinstance(resp, RoomReadMarkersError):
            raise RuntimeError(f"read markers failed: {resp}")
        return {}

    async def ensure_encryption_known(self, room_id):
        """Right after a join, the room's m.room.encryption state may not have reached this
        client yet, and nio would send in clear. Ask the server before the first send."""
        room = self.client.rooms[room_id]
        if room.encrypted:
            return
        resp = await self.client.room_get_state_event(room_id, "m.room.encryption")
        if isinstance(resp, RoomGetStateEventResponse) and resp.content.get("algorithm"):
            room.encrypted = True

    async def refresh_room_devices(self, room_id):
        """Makes the next send reach every device now in the room.

        nio only notices new members through /sync and never re-shares a session when
        a member gains a device, so members and keys are fetched again here and the
        outbound session is dropped when its recipients no longer match.
        """
        c = self.client
        resp = await c.joined_members(room_id)
        if isinstance(resp, JoinedMembersError):
            log(f"joined_members {room_id}: {resp}")
        if c.should_query_keys:
            resp = await c.keys_query()
            if isinstance(resp, KeysQueryError):
                log(f"keys_query: {resp}")
        room = c.rooms[room_id]
        devices = frozenset(
            (user_id, device.id)
            for user_id in room.users
            for device in c.device_store.active_user_devices(user_id)
        )
        if self.shared_with.get(room_id) != devices:
            c.invalidate_outbound_session(room_id)
            self.shared_with[room_id] = devices

    async def cmd_create_room(self, req):
        c = self.client
        initial_state = []
        if req.get("encrypted", True):
            initial_state.append({
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            })
        resp = await c.room_create(
            name=req.get("name") or None,
            is_direct=bool(req.get("is_direct", False)),
            preset=RoomPreset.private_chat,
            invite=req.get("invite") or [],
            initial_state=initial_state,
        )
        if isinstance(resp, RoomCreateError):
            raise RuntimeError(f"create room failed: {resp}")
        room_id = resp.room_id
        want_encrypted = bool(initial_state)

        def ready():
            room = c.rooms.get(room_id)
            return room is not None and (room.encrypted or not want_encrypted)

        await self.wait_room(ready, room_id)
        return {"room_id": room_id}

    async def run_command(self, req):
        cmd = req.get("cmd")
        req_id = req.get("req_id", "")
        try:
            if cmd == "send":
                out = await self.cmd_send(req)
                out.update({"type": "sent", "req_id": req_id, "room_id": req["room_id"]})
            elif cmd == "send_file":
                out = await self.cmd_send_file(req)
                out.update({"type": "sent", "req_id": req_id, "room_id": req["room_id"]})
            elif cmd in ("typing", "read"):
                out = await (self.cmd_typing(req) if cmd == "typing" else self.cmd_read(req))
                out.update({"type": "done", "req_id": req_id})
            elif cmd == "create_room":
                out = await self.cmd_create_room(req)
                out.update({"type": "room_created", "req_id": req_id})
            else:
                raise RuntimeError(f"unknown command {cmd!r}")
            emit(out)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            emit_error(f"{cmd}: {e}", req_id=req_id, traceback=traceback.format_exc())

    def spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def read_commands(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
        while True:
            line = await reader.readline()
            if not line:
                return  # stdin closed: the test process is gone
            line = line.strip()
            if not line:
                continue
            try:
                req = json.loads(line)
            except ValueError as e:
                emit_error(f"bad command line: {e}")
                continue
            if req.get("cmd") == "quit":
                return
            self.spawn(self.run_command(req))

    # ---- life cycle ---------------------------------------------------------

    async def start(self):
        c = self.client
        resp = await c.login(self.password, device_name="carebridge-test")
        if isinstance(resp, LoginError):
            raise RuntimeError(f"login failed: {resp}")
        c.add_event_callback(self.on_message, RoomMessage)
        c.add_event_callback(self.on_megolm, MegolmEvent)
        c.add_event_callback(self.on_other, UnknownEvent)
        c.add_event_callback(self.on_invite, InviteMemberEvent)
        c.add_ephemeral_callback(self.on_receipt, ReceiptEvent)
        await self.sync_once(first=True)
        if c.should_upload_keys:
            await self.maintain_keys()
        emit({"type": "ready", "user_id": c.user_id, "device_id": c.device_id})

    async def run(self):
        await self.start()
        sync_task = asyncio.ensure_future(self.sync_loop())
        self.spawn(self.watch_stalls())
        try:
            await self.read_commands()
        finally:
            self.stopping.set()
            sync_task.cancel()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(sync_task, *self.tasks, return_exceptions=True)
            await self.client.close()


def main():
    args = sys.argv[1:]
    if len(args) != 4:
        args = [os.environ.get(k, "") for k in
                ("AGENT_HOMESERVER", "AGENT_USER_ID", "AGENT_PASSWORD", "AGENT_STORE")]
    if not all(args):
        emit_error("usage: staff_agent.py HOMESERVER_URL USER_ID PASSWORD STORE_DIR")
        sys.exit(2)
    agent = Agent(*args)
    try:
        asyncio.run(agent.run())
    except KeyboardInterrupt:
        pass
    except Exception as e:
        emit_error(f"fatal: {e!r}", traceback=traceback.format_exc())
        sys.exit(1)


if __name__ == "__main__":
    main()
