// The conversation over the socket: frames in, resume without duplicates.

/** Frames of the conversation: start, resume from history, replies, turns, errors. */
class WidgetConversation extends WidgetView {
  /** Resume point: the last complete message with an id before the first unconfirmed user message. */
  resumePoint() {
    let stop = this.items.length;
    for (let i = this.convStart; i < this.items.length; i++) {
      const x = this.items[i];
      if (x.role === "user" && !x.id && (x.state === "sent" || x.state === "queued" || x.state === "unconfirmed")) {
        stop = i;
        break;
      }
    }
    for (let i = stop - 1; i >= this.convStart; i--) {
      const x = this.items[i];
      if (x.id && x.complete) return i;
    }
    return -1;
  }

  // -- socket events

  onOpen() {
    this.stats.connects += 1;
    this.setState("online");
    this.ready = false;
    if (this.audioOn) {
      // A new socket starts text-only: spoken replies stay on as the visitor had them.
      this.link.send({ type: "audio_settings", data: { enabled: true, output_format: REPLY_FORMAT } });
    }
  }

  onClose(event) {
    this.ready = false;
    // Sent messages not yet answered may or may not have reached the server: the next
    // resume tells (a match in the history), otherwise they are sent again.
    for (const item of this.inFlight) {
      if (item.id) item.state = "stored"; // turn_started told its id: never send it again
      else item.state = item.voice ? "heard" : "unconfirmed";
    }
    this.inFlight = [];
    this.currentTurn = null;
    this.interimText("");
    if (this.listening) this.stopMic(false);
    this.player.stopAll();
    this.update(() => this.layout());
    // 4400 bad request, 4401 unauthorised, 4403 origin refused, 4404 unknown template: the
    // error frame before the close was shown; retrying the same thing cannot help, except a
    // fresh token from getToken.
    const code = event ? event.code : 0;
    if (code === 4401 && typeof this.o.getToken === "function") return true;
    return !(code >= 4400 && code < 4500) && code !== 1008;
  }

  onFrame(f) {
    const frames = this.stats.frames;
    frames.push(f.type);
    if (frames.length > 2000) frames.splice(0, 1000); // a test hook, not a leak
    const handler = this[`on_${f.type}`];
    if (typeof handler === "function") handler.call(this, f);
  }

  on_conversation_started(f) {
    this.setCharacters(f.characters);
    if (this.o.template && f.template_id && f.template_id !== this.o.template && !this.switchTried) {
      this.switchTried = true;
      this.startNew();
      return;
    }
    const id = String(f.conversation_id);
    if (id !== this.conversationId) {
      if (this.conversationId) {
        // Unconfirmed messages of the old conversation move into the new one.
        const moving = this.items.filter((x) => x.role === "user" && !x.id &&
          ["unconfirmed", "sent", "queued"].includes(x.state) && this.items.indexOf(x) >= this.convStart);
        this.items = this.items.filter((x) => !moving.includes(x));
        for (const item of moving) item.state = "queued";
        this.inFlight = [];
        this.currentTurn = null;
        this.note(this.s.newStarted);
        this.convStart = this.items.length;
        this.items.push(...moving);
      }
      this.conversationId = id;
      this.ended = false;
    }
    this.ready = false;
    this.resume();
  }

  /** Ask for what this conversation holds after the resume point (answered by ``history``). */
  resume() {
    clearTimeout(this.resumeTimer);
    const point = this.resumePoint();
    const data = { conversation_id: this.conversationId };
    if (point >= 0) data.after_message_id = this.items[point].id;
    this.resumeFrom = point;
    this.awaitingHistory = true;
    if (!this.link.send({ type: "resume", data })) return;
    // A server that never answers must not keep queued messages waiting forever.
    this.resumeTimer = setTimeout(() => this.on_history({ messages: [] }), 8000);
  }

  on_history(f) {
    if (!this.awaitingHistory) return;
    if (f.conversation_id && String(f.conversation_id) !== this.conversationId) return;
    clearTimeout(this.resumeTimer);
    this.awaitingHistory = false;
    this.update(() => this.merge(Array.isArray(f.messages) ? f.messages : []));
    if (f.status === "ended") this.ended = true;
    const first = !this.ready;
    this.ready = true;
    if (first) {
      for (const item of this.items) if (item.state === "unconfirmed" && !item.id) item.state = "queued";
    }
    this.flush();
    // has_more: a page limit, or a reply still being written elsewhere: ask again from the new
    // point, sooner when the page brought something, backing off when it did not.
    if (f.has_more) {
      this.morePolls = f.messages && f.messages.length ? 0 : (this.morePolls || 0) + 1;
      const delay = Math.min(10000, 300 * 2 ** this.morePolls);
      this.resumeTimer = setTimeout(() => this.link.open && this.resume(), delay);
    } else {
      this.morePolls = 0;
    }
  }

  merge(messages) {
    const point = this.resumeFrom >= 0 ? this.resumeFrom : this.convStart - 1;
    const before = this.items.slice(0, point + 1);
    const rest = this.items.slice(point + 1);
    const used = new Set();
    const out = [];
    for (const m of messages) {
      if (!m || (m.role !== "user" && m.role !== "assistant")) continue;
      const id = normId(m.id);
      let item = this.byId.get(id);
      if (!item && m.role === "user") {
        item = rest.find((x) => !used.has(x) && x.role === "user" && !x.id && sameText(x.text, m.content));
        if (item) {
          item.id = id;
          this.byId.set(id, item);
          item.state = null;
        }
      }
      if (!item) {
        item = this.newItem({ id, role: m.role, name: m.name, characterId: m.character_id,
          text: m.content || "", status: m.status });
      } else if (m.role === "assistant") {
        if (m.content || !item.text) item.text = m.content || "";
        item.status = m.status || item.status;
        item.complete = true;
        if (m.name) item.name = m.name;
      }
      this.render(item);
      if (before.includes(item) || used.has(item)) continue;
      used.add(item);
      out.push(item);
    }
    this.items = before.concat(out, rest.filter((x) => !used.has(x)));
    this.layout();
  }

  on_message_started(f) {
    const id = normId(f.message_id);
    this.update(() => {
      let item = this.byId.get(id);
      if (!item) {
        item = this.newItem({ id, role: "assistant", name: f.character_name || this.characterName(f.character_id),
          characterId: f.character_id, complete: false, status: "streaming" });
        this.items.push(item);
      }
      this.layout();
    });
  }

  on_llm_chunk(f) {
    const id = normId(f.message_id);
    let item = this.byId.get(id);
    if (!item) {
      this.on_message_started(f);
      item = this.byId.get(id);
    }
    if (item.complete) return;
    this.update(() => {
      item.text += f.text || "";
      this.render(item);
    });
  }

  on_message_complete(f) {
    const id = normId(f.message_id);
    let item = this.byId.get(id);
    if (!item) {
      this.on_message_started(f);
      item = this.byId.get(id);
    }
    this.update(() => {
      if (typeof f.text === "string") item.text = f.text;
      item.status = f.status || "complete";
      item.complete = true;
      this.render(item);
      this.layout();
    });
  }

  on_turn_started(f) {
    const id = normId(f.user_message_id);
    const item = this.inFlight.find((x) => !x.id);
    this.currentTurn = (id && this.byId.get(id)) || item || null;
    if (!id || !item || this.byId.has(id)) return;
    item.id = id;
    item.el.dataset.id = id;
    this.byId.set(id, item);
    this.currentTurn = item;
  }

  /** A message that reached the conversation elsewhere (another tab, REST): shown before its
   * reply and known by its id, so its ``turn_started`` is not taken for this tab's own. */
  on_user_message(f) {
    const m = f.message || {};
    const id = normId(m.id);
    if (!id || this.byId.has(id) || String(f.conversation_id) !== this.conversationId) return;
    this.update(() => {
      this.items.push(this.newItem({ id, role: "user", text: m.content || "", status: m.status }));
      this.layout();
    });
  }

  /** The user message whose turn is over (answered, or cut short) leaves ``inFlight``. */
  settle(item) {
    const at = this.inFlight.indexOf(item);
    if (at < 0) return;
    this.inFlight.splice(at, 1);
    item.state = item.voice ? "heard" : "answered";
  }

  on_turn_complete(f) {
    const turn = this.currentTurn;
    this.currentTurn = null;
    this.settle(turn && this.inFlight.includes(turn) ? turn : this.inFlight[0]);
    this.update(() => this.layout());
    if (f.conversation_ended) {
      this.ended = true;
      this.note(this.s.ended, { action: { label: this.s.newConversation, run: () => this.startNew() } });
    }
  }

  on_conversation_ended() {
    this.ended = true; // the turn_complete that follows shows it and offers a new one
  }

  on_interrupted(f) {
    const id = normId(f.message_id);
    this.player.cancel(id);
    // A turn still open was cut short: the server drops its turn_complete.
    const turn = this.currentTurn;
    this.currentTurn = null;
    if (turn) this.settle(turn);
    const item = this.byId.get(id);
    this.update(() => {
      if (item) {
        item.status = "interrupted";
        item.complete = true;
        this.render(item);
      }
      this.layout();
    });
  }

  on_characters(f) {
    this.setCharacters(f.characters);
  }

  setCharacters(list) {
    if (!Array.isArray(list)) return;
    this.characters = list;
    const names = list.map((c) => c.name).filter(Boolean);
    this.subtitle.hidden = names.length < 2;
    this.subtitle.textContent = names.length < 2 ? "" : `With ${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
  }

  on_error(f) {
    const code = String(f.code || "");
    if (code === "unknown_message" && this.awaitingHistory && this.resumeFrom >= 0) {
      // The cursor message is gone (the history was erased): ask for all of it instead.
      this.resumeFrom = -1;
      this.link.send({ type: "resume", data: { conversation_id: this.conversationId } });
      return;
    }
    if (code === "unknown_message" && !this.awaitingHistory) {
      // An interrupt for a message the server no longer counts as this conversation's: moot.
      if (window.console) console.debug("parley:", code, f.message);
      return;
    }
    if (this.awaitingHistory) {
      // A failed resume: go on without history rather than waiting.
      this.on_history({ messages: [] });
    }
    if (/too_long|too_large|rate_limited|queue_full|validation_error|invalid_frame/.test(code)) {
      // The server refuses a message as it arrives (no turn runs): that is, but for messages
      // sent within the same round trip, the newest one sent that no turn has taken yet.
      const waiting = this.inFlight.filter((x) => !x.id && !x.voice);
      const item = waiting[waiting.length - 1];
      if (item) {
        this.inFlight.splice(this.inFlight.indexOf(item), 1);
        item.state = "failed";
        this.render(item);
      }
    }
    if (/not_supported|not_listening|stt_unavailable|tts_unavailable/.test(code) && (this.listening || this.mic)) {
      // Voice is not available on this server: stop the microphone, say so once.
      this.stopMic(false);
      this.say(this.s.errors.voiceUnavailable, code);
      return;
    }
    if (code === "not_found" && !this.ended) {
      this.say(friendlyError(code, this.s), code);
      this.startNew();
      return;
    }
    if (/ended|conflict/.test(code)) this.ended = true;
    this.update(() => this.layout());
    this.say(friendlyError(code, this.s), code);
    if (window.console) console.debug("parley:", code, f.message);
  }

  /** An error note, unless the same one was just shown (a burst of identical errors). */
  say(text, code) {
    const now = Date.now();
    if (this.lastError && this.lastError.code === code && now - this.lastError.at < 5000) return;
    this.lastError = { code, at: now };
    this.note(text, { error: true });
  }
}
