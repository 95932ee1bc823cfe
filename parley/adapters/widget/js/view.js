// Rendering: the launcher, the panel, the message list and the composer.

/** The panel: DOM, rendering of messages and notes, sending text. */
class WidgetView {
  constructor(options) {
    this.o = options;
    this.s = Object.assign({}, STRINGS, options.strings || {});
    this.s.errors = Object.assign({}, STRINGS.errors, (options.strings || {}).errors || {});
    this.items = []; // display order
    this.byId = new Map();
    this.inFlight = []; // user items sent, waiting for their turn_complete (server order)
    this.currentTurn = null; // the user item whose turn the server is answering now
    this.conversationId = null;
    this.convStart = 0; // index in items where the current conversation begins
    this.characters = [];
    this.ready = false; // resumed: history received on this socket
    this.ended = false;
    this.switchTried = false;
    this.listening = false;
    this.audioOn = false;
    this.stats = {
      playedChunks: 0, scheduledChunks: 0, receivedChunks: 0, stoppedChunks: 0, played: [],
      sentAudioFrames: 0, connects: 0, frames: [],
    };
    this.player = new Player(this.stats, () => this.refreshControls());
    this.audioDone = new Set(); // message ids whose audio the server has finished sending
    this.mic = null;
    this.build();
    this.link = new Link(
      { deviceId: deviceId(), token: options.token, getToken: options.getToken,
        template: options.template, lang: options.lang },
      {
        onOpen: () => this.onOpen(),
        onFrame: (f) => this.onFrame(f),
        onBinary: (b) => this.player.frame(b, this.audioFormat),
        onClose: (e) => this.onClose(e),
        onState: (state) => this.setState(state),
      },
    );
    this.link.connect();
    const session = storage("sessionStorage");
    if (options.open || session.getItem(`parley:open:${SERVER}`) === "1") this.open(false);
  }

  // -- DOM

  build() {
    const s = this.s;
    const title = this.o.title || "Chat";
    this.host = el("div", { "data-parley-widget": "" });
    const root = this.host.attachShadow({ mode: "open" });
    root.append(el("style", { text: CSS }));
    this.launcher = el("button", {
      class: "launcher", type: "button", "aria-label": `${s.open}: ${title}`,
      "aria-expanded": "false", "aria-controls": "parley-panel",
    }, icon(ICONS.chat));
    this.titleEl = el("h2", { id: "parley-title", text: title });
    this.subtitle = el("p", { class: "subtitle", hidden: true });
    this.statusEl = el("p", { class: "status", role: "status", "data-state": "connecting", text: s.connecting });
    this.closeBtn = el("button", { class: "icon-button close", type: "button", "aria-label": s.close }, icon(ICONS.close));
    this.log = el("div", { class: "log", role: "log", "aria-label": s.messages, "aria-live": "polite" });
    this.liveEl = el("div", { class: "live", "aria-hidden": "true" });
    this.typing = el("div", { class: "typing", "aria-hidden": "true", hidden: true },
      el("span"), el("span"), el("span"));
    this.scroller = el("div", { class: "scroller" }, this.log, this.liveEl, this.typing);
    this.interim = el("div", { class: "interim", "aria-hidden": "true", hidden: true });
    this.input = el("textarea", {
      id: "parley-input", rows: "1", placeholder: s.placeholder, autocomplete: "off",
    });
    this.micBtn = el("button", {
      class: "icon-button mic", type: "button", "aria-label": s.micStart, "aria-pressed": "false",
      hidden: !this.o.voice,
    }, icon(ICONS.mic));
    this.stopBtn = el("button", { class: "icon-button stop", type: "button", "aria-label": s.stopAudio, hidden: true },
      icon(ICONS.stop));
    this.sendBtn = el("button", { class: "icon-button send", type: "submit", "aria-label": s.send }, icon(ICONS.send));
    this.form = el("form", { class: "composer" },
      el("label", { class: "sr-only", for: "parley-input", text: s.input }),
      this.input, this.stopBtn, this.micBtn, this.sendBtn);
    this.panel = el("section", {
      class: "panel", id: "parley-panel", role: "dialog", "aria-modal": "false",
      "aria-labelledby": "parley-title", hidden: true, lang: this.o.lang || false,
    },
    el("header", {}, el("div", { class: "heading" }, this.titleEl, this.subtitle, this.statusEl), this.closeBtn),
    this.scroller, this.interim, this.form);
    root.append(el("div", { class: "root" }, this.launcher, this.panel));

    this.launcher.addEventListener("click", () => {
      if (this.o.voice) this.player.unlock(); // a user gesture: spoken replies may play
      if (this.panel.hidden) this.open();
      else this.close();
    });
    this.closeBtn.addEventListener("click", () => this.close());
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close();
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => this.autosize());
    this.micBtn.addEventListener("click", () => this.toggleMic());
    this.stopBtn.addEventListener("click", () => this.stopReply());
    (document.body || document.documentElement).append(this.host);
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight + 2, 120)}px`;
  }

  open(focus = true) {
    this.panel.hidden = false;
    this.launcher.setAttribute("aria-expanded", "true");
    this.launcher.setAttribute("aria-label", `${this.s.close}: ${this.o.title || "Chat"}`);
    storage("sessionStorage").setItem(`parley:open:${SERVER}`, "1");
    this.scrollDown(true);
    if (focus) this.input.focus();
  }

  close() {
    this.panel.hidden = true;
    this.launcher.setAttribute("aria-expanded", "false");
    this.launcher.setAttribute("aria-label", `${this.s.open}: ${this.o.title || "Chat"}`);
    storage("sessionStorage").setItem(`parley:open:${SERVER}`, "0");
    this.launcher.focus();
  }

  setState(state) {
    this.state = state;
    this.statusEl.dataset.state = state;
    const text = { online: this.s.online, connecting: this.s.connecting,
      reconnecting: this.s.reconnecting, offline: this.s.offline, refused: this.s.refused }[state];
    if (this.statusEl.textContent !== text) this.statusEl.textContent = text;
  }

  nearBottom() {
    const sc = this.scroller;
    return sc.scrollHeight - sc.scrollTop - sc.clientHeight < 60;
  }

  scrollDown(force) {
    if (force || this.stick) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Run a DOM change, keeping the view pinned to the bottom when it was there. */
  update(change) {
    this.stick = this.nearBottom();
    change();
    this.scrollDown(false);
  }

  // -- messages

  newItem(fields) {
    const item = Object.assign({ id: null, role: "assistant", name: null, characterId: null,
      text: "", status: "complete", complete: true, state: null, voice: false }, fields);
    item.id = normId(item.id);
    if (item.id) this.byId.set(item.id, item);
    this.render(item);
    return item;
  }

  characterName(characterId) {
    const c = this.characters.find((x) => x.id === characterId);
    return c ? c.name : null;
  }

  render(item) {
    if (!item.el) {
      item.el = el("div", { class: `msg ${item.role}` });
      item.nameEl = el("div", { class: item.role === "user" ? "name sr-only" : "name" });
      item.bubble = el("div", { class: "bubble" });
      item.meta = el("div", { class: "meta", hidden: true });
      item.el.append(item.nameEl, item.bubble, item.meta);
    }
    if (item.id) item.el.dataset.id = item.id;
    const who = item.role === "user" ? this.s.you
      : item.name || this.characterName(item.characterId) || this.s.assistant;
    if (item.nameEl.dataset.name !== who) {
      // "Maya:" for screen readers; the colon is not shown.
      item.nameEl.replaceChildren(who, el("span", { class: "sr-only", text: ":" }));
      item.nameEl.dataset.name = who;
    }
    if (item.bubble.textContent !== item.text) item.bubble.textContent = item.text;
    item.el.classList.toggle("streaming", !item.complete);
    // Nothing to show: a reply that failed before its first word (the error note says it all),
    // a spoken message nothing was heard in.
    item.el.hidden = item.complete && !item.text.trim();
    item.el.dataset.status = item.status || "";
    const meta = item.meta;
    meta.replaceChildren();
    if (item.state === "queued") meta.append(this.s.queued);
    else if (item.state === "failed") {
      const retry = el("button", { type: "button", text: this.s.retry });
      retry.addEventListener("click", () => {
        item.state = "queued";
        this.render(item);
        this.flush();
      });
      meta.append(this.s.notSent, retry);
    } else if (item.status === "interrupted") meta.append(this.s.interrupted);
    meta.hidden = !meta.childNodes.length;
  }

  /** Complete items, up to the first incomplete one, live in the log (announced once); the rest below. */
  layout() {
    let settled = true;
    let prevLog = null;
    let prevLive = null;
    for (const item of this.items) {
      if (!item.complete) settled = false;
      const parent = settled ? this.log : this.liveEl;
      const prev = settled ? prevLog : prevLive;
      const want = prev ? prev.nextSibling : parent.firstChild;
      if (item.el.parentNode !== parent || want !== item.el) parent.insertBefore(item.el, want);
      if (settled) prevLog = item.el;
      else prevLive = item.el;
    }
    const streaming = this.items.some((x) => x.role === "assistant" && !x.complete);
    this.typing.hidden = !(this.inFlight.length && !streaming);
    this.refreshControls();
  }

  add(item) {
    this.update(() => {
      this.items.push(item);
      this.layout();
    });
    return item;
  }

  note(text, { error = false, action = null } = {}) {
    const node = el("p", { class: error ? "note error" : "note", text });
    if (action) {
      const button = el("button", { type: "button", text: action.label });
      button.addEventListener("click", () => {
        button.disabled = true;
        action.run();
      });
      node.append(el("br"), button);
    }
    const item = { role: "note", complete: true, el: node, text };
    this.add(item);
    return item;
  }

  // -- sending

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    if (text.length > (this.o.maxChars || MAX_CHARS)) {
      this.say(this.s.tooLong, "too_long"); // the text stays in the box, to be shortened
      return;
    }
    this.input.value = "";
    this.autosize();
    this.sendText(text);
  }

  sendText(text) {
    if (this.o.voice) this.player.unlock();
    this.cutIn("message"); // the server interrupts a reply it is still sending; the rest is ours
    const item = this.newItem({ role: "user", text, state: "queued" });
    this.add(item);
    if (this.ended) this.startNew();
    else this.flush();
  }

  /** Send queued user messages, in order, once the socket has resumed. */
  flush() {
    if (!this.ready || !this.link.open) {
      this.update(() => this.layout());
      return;
    }
    for (const item of this.items) {
      if (item.role !== "user" || item.state !== "queued") continue;
      if (!this.link.send({ type: "user_message", data: { text: item.text } })) break;
      item.state = "sent";
      this.inFlight.push(item);
      this.render(item);
    }
    this.update(() => this.layout());
  }

  startNew() {
    this.ended = false;
    this.ready = false;
    this.switchTried = true;
    const data = {};
    if (this.o.template) data.template_id = this.o.template;
    if (this.o.lang) data.language = this.o.lang;
    this.link.send({ type: "new_conversation", data });
  }
}
