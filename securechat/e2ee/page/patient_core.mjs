// The patient page's crypto, shared by the Node stand-in (patient_device.mjs) and the browser
// page (patient_page.mjs), for the spike of issue 18 (docs/e2ee-to-the-patient.md, steps 3–5).
//
// It imports nothing: the caller hands it matrix-sdk-crypto-wasm's bindings (Node's entry point,
// or the browser's, initialised), so the same file runs in both. It reaches only the two
// endpoints the secure chat gives a patient page: the allowlist proxy (proxyBase +
// /_matrix/client/…) and the events long poll (eventsURL); `fetch` is the platform's. It holds no
// Matrix token and does no /sync; its store is memory.
//
// emit(obj) reports what happens (ready, to_device, room_event, decrypted, error; never
// to-device content); log(text) is for diagnostics (counts, never keys or bodies).

// members are the secure room's members when the page opens (the events poll brings later
// changes, not what happened before the page's device existed).
export async function startPatientDevice({ wasm, proxyBase, eventsURL, userId, deviceId, roomId, members: initialMembers = [], emit, log, pollTimeoutMS = 10000 }) {
    const {
        OlmMachine, UserId, DeviceId, RoomId, DeviceLists, RequestType, EncryptionSettings, HistoryVisibility,
        DecryptionSettings, TrustRequirement, ProcessedToDeviceEventType, CollectStrategy, DehydratedDeviceKey,
    } = wasm;
    const emitError = (message, extra = {}) => emit({ type: "error", message, ...extra });

    const machine = await OlmMachine.initialize(new UserId(userId), new DeviceId(deviceId));
    const stats = { requests: {}, refused: 0, uploaded: 0 };

    // ---- requests, through the proxy ------------------------------------------------

    const enc = encodeURIComponent;
    function route(req) {
        switch (req.type) {
            case RequestType.KeysUpload:
                return ["POST", "/_matrix/client/v3/keys/upload", req.body];
            case RequestType.KeysQuery:
                return ["POST", "/_matrix/client/v3/keys/query", req.body];
            case RequestType.KeysClaim:
                return ["POST", "/_matrix/client/v3/keys/claim", req.body];
            case RequestType.ToDevice:
                return ["PUT", `/_matrix/client/v3/sendToDevice/${enc(req.event_type)}/${enc(req.txn_id)}`, req.body];
            case RequestType.SignatureUpload:
                return ["POST", "/_matrix/client/v3/keys/signatures/upload", req.body];
            case RequestType.RoomMessage:
                return ["PUT", `/_matrix/client/v3/rooms/${enc(req.room_id)}/send/${enc(req.event_type)}/${enc(req.txn_id)}`, req.body];
            default:
                return null; // KeysBackup: the page has no backup
        }
    }
    const typeName = (t) => Object.keys(RequestType).find((k) => RequestType[k] === t) ?? String(t);

    async function call(method, path, body) {
        const resp = await fetch(proxyBase + path, { method, headers: { "Content-Type": "application/json" }, body });
        return { status: resp.status, text: await resp.text() };
    }
    function safeErrcode(text) {
        try {
            return JSON.parse(text).errcode ?? "";
        } catch {
            return "";
        }
    }

    // send relays one OlmMachine request and marks it sent; a refusal is reported and the
    // request stays in the machine's queue (it comes back from outgoingRequests).
    async function send(req) {
        const r = route(req);
        const name = typeName(req.type);
        if (!r) return false;
        if (req.type === RequestType.KeysUpload) {
            const b = JSON.parse(req.body); // by kind and count, never the keys
            log(`keys/upload: device_keys ${Boolean(b.device_keys)}, one_time_keys ${Object.keys(b.one_time_keys ?? {}).length}, fallback_keys ${Object.keys(b.fallback_keys ?? {}).length}`);
        }
        const { status, text } = await call(...r);
        stats.requests[name] = (stats.requests[name] ?? 0) + 1;
        if (status !== 200) {
            stats.refused++;
            emitError(`${name} answered ${status}`, { status, errcode: safeErrcode(text) });
            return false;
        }
        // bootstrapCrossSigning's signature upload has no id: nothing to mark.
        if (req.id !== undefined) await machine.markRequestAsSent(req.id, req.type, text);
        if (req.type === RequestType.KeysUpload) stats.uploaded++;
        return true;
    }

    // One drain at a time: outgoingRequests returns what is not marked sent yet, so two drains
    // at once would send a request twice. Cross-signing's bootstrap runs in the same line.
    let draining = Promise.resolve();
    function exclusive(fn) {
        const run = draining.then(fn);
        draining = run.catch((e) => emitError(`drain: ${e?.stack ?? e}`));
        return run;
    }
    function drain() {
        return exclusive(async () => {
            for (const req of await machine.outgoingRequests()) await send(req);
        });
    }

    // crossSign makes the patient-web user's cross-signing identity (private keys only in this
    // machine) and signs this device with it: bootstrapCrossSigning's requests in their order,
    // through the proxy. The homeserver takes a user's first cross-signing keys without
    // user-interactive auth; the proxy refuses any `auth`.
    function crossSign() {
        return exclusive(async () => {
            const started = Date.now();
            const reqs = await machine.bootstrapCrossSigning(true);
            if (reqs.uploadKeysRequest && !(await send(reqs.uploadKeysRequest))) {
                throw new Error("the device keys upload before cross-signing was refused");
            }
            const up = await call("POST", "/_matrix/client/v3/keys/device_signing/upload", reqs.uploadSigningKeysRequest.body);
            stats.requests.UploadSigningKeys = (stats.requests.UploadSigningKeys ?? 0) + 1;
            if (up.status !== 200) {
                stats.refused++;
                throw new Error(`keys/device_signing/upload answered ${up.status} ${safeErrcode(up.text)}`);
            }
            if (!(await send(reqs.uploadSignaturesRequest))) {
                throw new Error("the self-signing key's signature of this device was refused");
            }
            const status = await machine.crossSigningStatus();
            return {
                type: "cross_signed",
                has_master: status.hasMaster, has_self_signing: status.hasSelfSigning, has_user_signing: status.hasUserSigning,
                took_ms: Date.now() - started,
            };
        });
    }

    // ---- the secure room's timeline -------------------------------------------------

    let roomEvents = 0;
    const members = new Set(initialMembers);
    let pending = []; // encrypted events whose room key has not come yet

    // One decryption pass at a time (the poll loop's and a command's).
    let decrypting = Promise.resolve();
    function decryptPendingSerial() {
        decrypting = decrypting.then(decryptPending, decryptPending);
        return decrypting;
    }

    async function decryptPending() {
        const still = [];
        for (const p of pending) {
            try {
                const d = await machine.decryptRoomEvent(JSON.stringify(p.ev), new RoomId(roomId),
                    new DecryptionSettings(TrustRequirement.Untrusted));
                const ev = JSON.parse(d.event);
                emit({
                    type: "decrypted",
                    event_id: p.ev.event_id ?? "",
                    sender: d.sender.toString(),
                    sender_device: d.senderDevice?.toString() ?? "",
                    event_type: ev.type ?? "",
                    body: ev.content?.body ?? "",
                    waited_ms: Date.now() - p.arrived,
                });
            } catch (e) {
                still.push(p); // its room key comes in a later to-device batch
            }
        }
        pending = still;
    }

    // ---- the events long poll -------------------------------------------------------

    let since = "";
    let batches = 0;
    let stopped = false;
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    async function pollLoop() {
        while (!stopped) {
            let b;
            try {
                const resp = await fetch(`${eventsURL}?since=${enc(since)}&timeout=${pollTimeoutMS}`);
                if (resp.status !== 200) {
                    emitError(`events answered ${resp.status}`);
                    await sleep(500);
                    continue;
                }
                b = await resp.json();
            } catch (e) {
                if (stopped) return;
                emitError(`events: ${e}`);
                await sleep(500);
                continue;
            }
            const counts = new Map(Object.entries(b.device_one_time_keys_count ?? {}));
            const lists = new DeviceLists(
                (b.device_lists?.changed ?? []).map((u) => new UserId(u)),
                (b.device_lists?.left ?? []).map((u) => new UserId(u)),
            );
            const fallback = b.device_unused_fallback_key_types ? new Set(b.device_unused_fallback_key_types) : undefined;
            const toDevice = JSON.stringify(b.to_device?.events ?? []);
            // Until the homeserver reported a count, none is "unknown", not "zero" (MSC4186).
            const receive = counts.size > 0 ? machine.receiveSyncChanges.bind(machine) : machine.receiveSyncChangesMsc4186.bind(machine);
            log(`events batch: ${b.to_device?.events?.length ?? 0} to-device, counts ${JSON.stringify(b.device_one_time_keys_count ?? {})}, fallback ${JSON.stringify(b.device_unused_fallback_key_types ?? null)}`);
            const processed = await receive(toDevice, lists, counts, fallback, new DecryptionSettings(TrustRequirement.Untrusted));
            since = b.next_batch;
            batches++;
            for (const ev of b.room_events ?? []) {
                roomEvents++;
                if (ev.type === "m.room.member" && typeof ev.state_key === "string") {
                    const m = ev.content?.membership;
                    if (m === "join" || m === "invite") members.add(ev.state_key);
                    else members.delete(ev.state_key);
                }
                emit({ type: "room_event", event_id: ev.event_id, event_type: ev.type, sender: ev.sender,
                    state_key: ev.state_key ?? "", membership: ev.type === "m.room.member" ? (ev.content?.membership ?? "") : "" });
                if (ev.type === "m.room.encrypted") pending.push({ ev, arrived: Date.now() });
            }
            if (processed.length > 0 || b.missed) {
                emit({
                    type: "to_device",
                    missed: Boolean(b.missed),
                    events: processed.map((p) => {
                        const raw = JSON.parse(p.rawEvent);
                        return {
                            type: raw.type ?? "",
                            sender: raw.sender ?? "",
                            decrypted: p.type === ProcessedToDeviceEventType.Decrypted,
                            utd: p.type === ProcessedToDeviceEventType.UnableToDecrypt,
                        };
                    }),
                });
            }
            await drain();
            await decryptPendingSerial();
        }
    }

    // ---- commands ---------------------------------------------------------------------

    // recipients lists, per to-device event type, the devices a share request addresses
    // ("user|device"), never the content.
    function recipients(shares) {
        const out = {};
        for (const s of shares) {
            const msgs = JSON.parse(s.body).messages ?? {};
            for (const [u, devs] of Object.entries(msgs)) {
                for (const d of Object.keys(devs)) (out[s.event_type] ??= []).push(`${u}|${d}`);
            }
        }
        return out;
    }

    async function reply(body, userList) {
        const list = userList ?? [...new Set([...members, userId])];
        const users = () => list.map((u) => new UserId(u));
        await machine.updateTrackedUsers(users());
        await drain(); // keys/query of the members
        const claim = await machine.getMissingSessions(users());
        if (claim) await send(claim);
        const settings = new EncryptionSettings();
        settings.historyVisibility = HistoryVisibility.Shared;
        // Only devices their owner signed (cross-signing) get the page's room keys: a device
        // the bridge adds to the patient-web user without the patient's signature gets none,
        // and neither does a user with no cross-signing identity.
        settings.sharingStrategy = CollectStrategy.identityBasedStrategy();
        const shares = await machine.shareRoomKey(new RoomId(roomId), users(), settings);
        const to = recipients(shares);
        for (const s of shares) {
            if (!(await send(s))) throw new Error("sharing the room key was refused");
        }
        await drain(); // anything else the share queued
        const content = await machine.encryptRoomEvent(new RoomId(roomId), "m.room.message",
            JSON.stringify({ msgtype: "m.text", body }));
        const txn = `pw${Date.now()}${Math.random().toString(36).slice(2, 8)}`;
        const { status, text } = await call("PUT",
            `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.encrypted/${txn}`, content);
        if (status !== 200) throw new Error(`send answered ${status} ${safeErrcode(text)}`);
        return { type: "sent", event_id: JSON.parse(text).event_id, shared_with_devices: shares.length, recipients: to };
    }

    // ---- the dehydrated device (MSC3814): passkey recovery ---------------------------
    //
    // keyBytes is the 32-byte pickle key (the page derives it from the passkey's PRF output).
    // dehydrate stores a new dehydrated device of the patient-web user, signed by this machine's
    // self-signing key (bootstrapCrossSigning first), which receives room keys while no page is
    // open. rehydrate, in a new machine (another browser, another device ID), fetches it, opens
    // it with the key and takes the room keys it received. Neither reports a key or an event.

    const DEHYDRATED = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";
    async function dehydrate(keyBytes) {
        const started = Date.now();
        const key = DehydratedDeviceKey.createKeyFromArray(keyBytes);
        const dd = await machine.dehydratedDevices().create();
        const req = await dd.keysForUpload("Secure messages (passkey recovery)", key);
        const body = JSON.parse(req.body);
        const { status, text } = await call("PUT", DEHYDRATED, req.body);
        stats.requests.PutDehydratedDevice = (stats.requests.PutDehydratedDevice ?? 0) + 1;
        if (status !== 200) {
            stats.refused++;
            throw new Error(`dehydrated_device PUT answered ${status} ${safeErrcode(text)}`);
        }
        const sigs = Object.keys(body.device_keys?.signatures?.[userId] ?? {});
        return {
            type: "dehydrated", device_id: JSON.parse(text).device_id,
            algorithm: body.device_data?.algorithm ?? "",
            one_time_keys: Object.keys(body.one_time_keys ?? {}).length,
            fallback_keys: Object.keys(body.fallback_keys ?? {}).length,
            signatures: sigs.length, dehydrated_flag: body.device_keys?.dehydrated === true,
            took_ms: Date.now() - started,
        };
    }

    async function rehydrate(keyBytes) {
        const started = Date.now();
        const key = DehydratedDeviceKey.createKeyFromArray(keyBytes);
        const got = await call("GET", DEHYDRATED);
        stats.requests.GetDehydratedDevice = (stats.requests.GetDehydratedDevice ?? 0) + 1;
        if (got.status !== 200) {
            stats.refused++;
            throw new Error(`dehydrated_device GET answered ${got.status} ${safeErrcode(got.text)}`);
        }
        const { device_id: dehydratedId, device_data: data } = JSON.parse(got.text);
        const fetchedMS = Date.now() - started;
        const device = await machine.dehydratedDevices().rehydrate(key, new DeviceId(dehydratedId), JSON.stringify(data));
        const openedMS = Date.now() - started;
        let nextBatch;
        let events = 0;
        let roomKeys = 0;
        let pages = 0;
        for (;;) {
            const r = await call("POST", `${DEHYDRATED}/${enc(dehydratedId)}/events`, JSON.stringify(nextBatch ? { next_batch: nextBatch } : {}));
            stats.requests.DehydratedDeviceEvents = (stats.requests.DehydratedDeviceEvents ?? 0) + 1;
            if (r.status !== 200) {
                stats.refused++;
                throw new Error(`dehydrated_device events answered ${r.status} ${safeErrcode(r.text)}`);
            }
            const b = JSON.parse(r.text);
            pages++;
            if (!b.events || b.events.length === 0) break;
            events += b.events.length;
            const keys = await device.receiveEvents(JSON.stringify(b.events), new DecryptionSettings(TrustRequirement.Untrusted));
            roomKeys += keys.length;
            if (!b.next_batch || b.next_batch === nextBatch) break;
            nextBatch = b.next_batch;
        }
        device.free?.();
        await decryptPendingSerial();
        return {
            type: "rehydrated", device_id: dehydratedId, events, room_keys: roomKeys, pages,
            fetched_ms: fetchedMS, opened_ms: openedMS, took_ms: Date.now() - started,
        };
    }

    // ---- secret storage (SSSS, m.secret_storage.v1.aes-hmac-sha2): the cross-signing keys -----
    //
    // ssssKey is 32 bytes the page derives from the passkey's PRF output (another HKDF label
    // than the pickle key's). storeCrossSigning puts the three private cross-signing keys in the
    // patient-web user's account data, encrypted as the spec (and Element) does: per secret,
    // HKDF-SHA-256(key, 32 zero bytes, secret name) → AES-256-CTR key and HMAC-SHA-256 key.
    // Element, given that key as a recovery key, would read them. restoreCrossSigning, in a new
    // machine, reads and decrypts them, imports them and signs this device with the
    // self-signing key. Neither reports a key.

    const SSSS_ALGORITHM = "m.secret_storage.v1.aes-hmac-sha2";
    const SECRETS = ["m.cross_signing.master", "m.cross_signing.self_signing", "m.cross_signing.user_signing"];
    const utf8 = (x) => new TextEncoder().encode(x);
    const b64 = (u8) => btoa(String.fromCharCode(...u8));
    const unb64 = (x) => Uint8Array.from(atob(x), (c) => c.charCodeAt(0));
    const accountData = (type) => `/_matrix/client/v3/user/${enc(userId)}/account_data/${enc(type)}`;

    async function ssssKeys(key, name) {
        const ikm = await crypto.subtle.importKey("raw", key, "HKDF", false, ["deriveBits"]);
        const bits = new Uint8Array(await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: utf8(name) }, ikm, 512));
        const aes = await crypto.subtle.importKey("raw", bits.slice(0, 32), "AES-CTR", false, ["encrypt", "decrypt"]);
        const mac = await crypto.subtle.importKey("raw", bits.slice(32), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
        bits.fill(0);
        return { aes, mac };
    }
    async function ssssEncrypt(key, name, plain, ivGiven) {
        const { aes, mac } = await ssssKeys(key, name);
        const iv = ivGiven ?? crypto.getRandomValues(new Uint8Array(16));
        iv[8] &= 0x7f; // as matrix-js-sdk: keep clear of the 64-bit counter's boundary
        const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-CTR", counter: iv, length: 64 }, aes, plain));
        const m = new Uint8Array(await crypto.subtle.sign("HMAC", mac, ct));
        return { iv: b64(iv), ciphertext: b64(ct), mac: b64(m) };
    }
    async function ssssDecrypt(key, name, e) {
        const { aes, mac } = await ssssKeys(key, name);
        const ct = unb64(e.ciphertext);
        if (!(await crypto.subtle.verify("HMAC", mac, unb64(e.mac), ct))) throw new Error(`secret ${name}: its MAC does not match this key`);
        return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-CTR", counter: unb64(e.iv), length: 64 }, aes, ct));
    }
    async function putAccountData(type, content) {
        const r = await call("PUT", accountData(type), JSON.stringify(content));
        stats.requests.PutAccountData = (stats.requests.PutAccountData ?? 0) + 1;
        if (r.status !== 200) {
            stats.refused++;
            throw new Error(`account data PUT answered ${r.status} ${safeErrcode(r.text)}`);
        }
    }
    async function getAccountData(type) {
        const r = await call("GET", accountData(type));
        stats.requests.GetAccountData = (stats.requests.GetAccountData ?? 0) + 1;
        if (r.status !== 200) {
            if (r.status === 403) stats.refused++;
            throw new Error(`account data GET answered ${r.status} ${safeErrcode(r.text)}`);
        }
        return JSON.parse(r.text);
    }

    async function storeCrossSigning(ssssKey) {
        const started = Date.now();
        const exp = await machine.exportCrossSigningKeys();
        const seeds = [exp?.masterKey, exp?.self_signing_key, exp?.userSigningKey];
        if (seeds.some((x) => !x)) throw new Error("this device holds no complete set of cross-signing keys");
        const keyId = [...crypto.getRandomValues(new Uint8Array(24))].map((b) => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[b % 62]).join("");
        // The key check: 32 zero bytes encrypted under the name "" (iv and mac kept).
        const check = await ssssEncrypt(ssssKey, "", new Uint8Array(32));
        await putAccountData(`m.secret_storage.key.${keyId}`, { algorithm: SSSS_ALGORITHM, name: "Passkey (PRF)", iv: check.iv, mac: check.mac });
        for (let i = 0; i < SECRETS.length; i++) {
            await putAccountData(SECRETS[i], { encrypted: { [keyId]: await ssssEncrypt(ssssKey, SECRETS[i], utf8(seeds[i])) } });
        }
        await putAccountData("m.secret_storage.default_key", { key: keyId });
        exp.free?.();
        return { type: "secrets_stored", secrets: SECRETS.length, requests: SECRETS.length + 2, took_ms: Date.now() - started };
    }

    async function restoreCrossSigning(ssssKey) {
        const started = Date.now();
        const { key: keyId } = await getAccountData("m.secret_storage.default_key");
        const desc = await getAccountData(`m.secret_storage.key.${keyId}`);
        if (desc.algorithm !== SSSS_ALGORITHM) throw new Error(`secret storage key of algorithm ${desc.algorithm}`);
        const check = await ssssEncrypt(ssssKey, "", new Uint8Array(32), unb64(desc.iv));
        const keyMatches = check.mac.replace(/=+$/, "") === String(desc.mac).replace(/=+$/, "");
        if (!keyMatches) throw new Error("the passkey's secret storage key does not match the stored key check");
        const seeds = [];
        for (const name of SECRETS) {
            const item = (await getAccountData(name)).encrypted?.[keyId];
            if (!item) throw new Error(`secret ${name} is not encrypted under the default key`);
            seeds.push(new TextDecoder().decode(await ssssDecrypt(ssssKey, name, item)));
        }
        const fetchedMS = Date.now() - started;
        // The public identity must be known to check the keys against it (keys/query of self).
        await machine.updateTrackedUsers([new UserId(userId)]);
        await drain();
        const st = await machine.importCrossSigningKeys(seeds[0], seeds[1], seeds[2]);
        seeds.fill("");
        const imported = { has_master: st.hasMaster, has_self_signing: st.hasSelfSigning, has_user_signing: st.hasUserSigning };
        if (!st.hasSelfSigning) throw new Error("the cross-signing keys were not imported (the public identity does not match or is unknown)");
        const own = await machine.getDevice(new UserId(userId), new DeviceId(deviceId));
        if (!own) throw new Error("this device is not in its own store");
        const req = await own.verify();
        if (!(await send(req))) throw new Error("the self-signing key's signature of this device was refused");
        await drain();
        return {
            type: "cross_signing_restored", ...imported, key_check: keyMatches, fetched_ms: fetchedMS,
            signed_locally: Boolean((await machine.getDevice(new UserId(userId), new DeviceId(deviceId)))?.isCrossSignedByOwner()),
            took_ms: Date.now() - started,
        };
    }

    // inject hands the page a room event it did not get from its events long poll (one sent
    // before this device existed: the inbox has no history for a page that opens later).
    async function inject(ev) {
        pending.push({ ev, arrived: Date.now() });
        await decryptPendingSerial();
    }

    function statsNow() {
        return { type: "stats", batches, room_events: roomEvents, undecrypted: pending.length, members: [...members].sort(), ...stats };
    }

    // Ready once the device's keys are uploaded (the first outgoing requests: keys/upload, and
    // keys/query of the patient-web user itself).
    for (let i = 0; ; i++) {
        await drain();
        if (stats.uploaded > 0) break;
        if (i === 50) throw new Error("the device keys were never uploaded");
        await sleep(100);
    }
    const polling = pollLoop().catch((e) => emitError(`poll loop: ${e?.stack ?? e}`, { fatal: true }));
    return {
        machine, reply, crossSign, dehydrate, rehydrate, storeCrossSigning, restoreCrossSigning, inject, stats: statsNow, polling,
        stop() {
            stopped = true;
        },
    };
}
