/*
 * Parley website widget: plain JavaScript, no build step, no third-party requests.
 *
 *   <script src="https://HOST/widget.js" data-template="friendly-assistant"
 *           data-title="Chat with us" async></script>
 *
 * Options (data-* on the script tag, or Parley.init({...})): template, title, token (or getToken,
 * a function returning a token or a promise of one), lang, voice ("true"), open ("true"),
 * init ("manual": wait for Parley.init). It talks to /ws on the script's own origin with the
 * protocol of docs/protocol.md. See docs/widget.md.
 */
(() => {
  "use strict";

  if (window.Parley && window.Parley.version) return; // loaded twice: keep the first

  const VERSION = "1";
  const SCRIPT =
    document.currentScript || document.querySelector('script[src$="/widget.js"]') || null;
  const SERVER = new URL(SCRIPT && SCRIPT.src ? SCRIPT.src : location.href).origin;
  const MAX_CHARS = 4000;
  const PCM_RATE = 16000; // microphone audio sent to the server
  const REPLY_FORMAT = "pcm_24000"; // spoken replies asked from the server
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];

  const STRINGS = {
    open: "Open chat",
    close: "Close chat",
    placeholder: "Type a message…",
    input: "Message",
    send: "Send message",
    micStart: "Start voice input",
    micStop: "Stop voice input",
    stopAudio: "Stop the reply",
    you: "You",
    assistant: "Assistant",
    messages: "Messages",
    online: "Online",
    connecting: "Connecting…",
    reconnecting: "Connection lost. Reconnecting…",
    offline: "You are offline. Messages will be sent when the connection is back.",
    refused: "Not connected.",
    queued: "Will be sent when the connection is back",
    notSent: "Not sent.",
    retry: "Try again",
    interrupted: "(interrupted)",
    ended: "This conversation has ended.",
    newConversation: "Start a new conversation",
    newStarted: "A new conversation has started.",
    tooLong: "That message is too long. Please shorten it and try again.",
    listening: "Listening…",
    errors: {
      rate_limited: "You are sending messages a little too quickly. Please wait a moment and try again.",
      too_long: "That message is too long. Please shorten it and try again.",
      auth: "Please sign in again to keep chatting.",
      not_found: "This conversation is no longer available. Starting a new one.",
      ended: "This conversation has ended. Send a message to start a new one.",
      stt: "Sorry, I could not make out what you said. Please try again.",
      tts: "The spoken reply is not available right now; the text is shown instead.",
      mic: "The microphone could not be used. Check your browser's permission and try again.",
      voiceUnsupported: "Voice input is not supported in this browser.",
      voiceUnavailable: "Voice is not available on this chat right now; you can still type.",
      reply: "Sorry, something went wrong while answering. Please try again.",
      unavailable: "This chat is not available on this page. Please contact the site owner.",
      generic: "Sorry, something went wrong. Please try again.",
    },
  };

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === false || value == null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function icon(path) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
    p.setAttribute("d", path);
    svg.append(p);
    return svg;
  }

  const ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    close: "M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4L12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z",
    send: "M3 20.5 21 12 3 3.5v6.6L15 12 3 13.9z",
    mic: "M12 15a3 3 0 0 0 3-3V6a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.9V22h2v-3.1a7 7 0 0 0 6-6.9z",
    stop: "M7 7h10v10H7z",
  };

  function randomId() {
    if (window.crypto && crypto.randomUUID && window.isSecureContext) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function storage(kind) {
    try {
      const s = window[kind];
      s.setItem("parley:probe", "1");
      s.removeItem("parley:probe");
      return s;
    } catch (_) {
      const memory = new Map();
      return {
        getItem: (k) => (memory.has(k) ? memory.get(k) : null),
        setItem: (k, v) => memory.set(k, String(v)),
        removeItem: (k) => memory.delete(k),
      };
    }
  }

  function deviceId() {
    const store = storage("localStorage");
    const key = `parley:device:${SERVER}`;
    let id = store.getItem(key);
    if (!id || !/^[A-Za-z0-9._~-]{1,128}$/.test(id)) {
      id = randomId();
      store.setItem(key, id);
    }
    return id;
  }

  function uuidFromBytes(bytes) {
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  const sameText = (a, b) => (a || "").trim() === (b || "").trim();
  const normId = (id) => (id == null ? null : String(id).toLowerCase());

  function friendlyError(code, strings) {
    const e = strings.errors;
    const c = String(code || "");
    if (c.startsWith("provider_") || /llm|timeout|internal/.test(c)) return e.reply;
    if (c === "rate_limited" || c === "queue_full") return e.rate_limited;
    if (/too_long|too_large/.test(c)) return e.too_long;
    if (/^(auth_required|invalid_token|token_expired|unauthori[sz]ed|user_mismatch)$/.test(c)) return e.auth;
    if (c === "not_found") return e.not_found;
    if (/ended/.test(c)) return e.ended;
    if (/^tts_/.test(c)) return e.tts;
    if (/^stt_/.test(c)) return e.stt;
    if (/forbidden_origin|unknown_template/.test(c)) return e.unavailable;
    return e.generic;
  }

  // ------------------------------------------------------------ connection

  /** One WebSocket to /ws, reopened with backoff until closed for good. */
  class Link {
    constructor(options, handlers) {
      this.options = options;
      this.handlers = handlers;
      this.ws = null;
      this.attempt = 0;
      this.timer = null;
      this.closed = false;
      this.wake = () => this.connectSoon(0);
      window.addEventListener("online", this.wake);
      document.addEventListener("visibilitychange", this.onVisible = () => {
        if (document.visibilityState === "visible") this.connectSoon(0);
      });
    }

    get open() {
      return !!this.ws && this.ws.readyState === WebSocket.OPEN;
    }

    async url() {
      const url = new URL("/ws", SERVER);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      const o = this.options;
      url.searchParams.set("device_id", o.deviceId);
      let token = o.token;
      if (typeof o.getToken === "function") token = await o.getToken();
      if (token) url.searchParams.set("token", token);
      if (o.template) url.searchParams.set("template_id", o.template);
      if (o.lang) url.searchParams.set("language", o.lang);
      return url.toString();
    }

    async connect() {
      if (this.closed || this.ws || this.connecting) return;
      this.timer = null;
      this.connecting = true;
      this.handlers.onState(this.attempt ? "reconnecting" : "connecting");
      let ws;
      try {
        ws = new WebSocket(await this.url());
      } catch (err) {
        this.connecting = false;
        this.retry();
        return;
      }
      this.connecting = false;
      if (this.closed) {
        ws.close();
        return;
      }
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onopen = () => {
        this.attempt = 0;
        this.handlers.onOpen();
      };
      ws.onmessage = (event) => {
        if (typeof event.data !== "string") return this.handlers.onBinary(event.data);
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch (_) {
          return;
        }
        if (frame && typeof frame.type === "string") this.handlers.onFrame(frame);
      };
      ws.onclose = (event) => {
        if (this.ws !== ws) return;
        this.ws = null;
        // false: the server refused us for good (bad request, origin, unknown template...).
        if (this.handlers.onClose(event) === false) {
          this.handlers.onState("refused");
          return;
        }
        this.retry();
      };
    }

    retry() {
      if (this.closed) return;
      const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
      this.attempt += 1;
      this.handlers.onState(navigator.onLine === false ? "offline" : "reconnecting");
      this.connectSoon(base * (0.75 + Math.random() * 0.5));
    }

    connectSoon(delay) {
      if (this.closed || this.ws || this.connecting) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.connect(), delay);
    }

    send(frame) {
      if (!this.open) return false;
      this.ws.send(JSON.stringify(frame));
      return true;
    }

    sendBinary(data) {
      if (!this.open) return false;
      this.ws.send(data);
      return true;
    }

    /** Drop the current socket (it reconnects). */
    drop() {
      if (this.ws) this.ws.close();
    }

    close() {
      this.closed = true;
      clearTimeout(this.timer);
      window.removeEventListener("online", this.wake);
      document.removeEventListener("visibilitychange", this.onVisible);
      if (this.ws) {
        const ws = this.ws;
        this.ws = null;
        ws.close(1000);
      }
    }
  }

  // ----------------------------------------------------------------- audio

  /** Plays PCM16 reply chunks in arrival order, gap-free, through Web Audio. */
  class Player {
    constructor(stats, onChange) {
      this.stats = stats;
      this.onChange = onChange;
      this.ctx = null;
      this.next = 0;
      this.live = new Set(); // scheduled sources
      this.cancelled = new Set(); // message ids whose audio is dropped
      this.carry = new Map(); // message id -> odd trailing byte
      this.heard = new Map(); // message id -> indexes of sentences with audio played
    }

    /** Create or resume the AudioContext (call from a user gesture where possible). */
    unlock() {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return null;
      if (!this.ctx) this.ctx = new Ctx();
      if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
      return this.ctx;
    }

    get playing() {
      return this.live.size > 0;
    }

    playingIds() {
      return [...new Set([...this.live].map((source) => source.messageId))];
    }

    /** How many of a message's sentences were (at least partly) played. */
    playedSentences(id) {
      const heard = this.heard.get(normId(id));
      return heard ? heard.size : 0;
    }

    /** A binary frame: 16 bytes message id, u16 sentence, u16 chunk (big-endian), audio. */
    frame(buffer, format) {
      if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < 20) return;
      const view = new DataView(buffer);
      const id = uuidFromBytes(new Uint8Array(buffer, 0, 16));
      const sentence = view.getUint16(16);
      const chunk = view.getUint16(18);
      this.stats.receivedChunks += 1;
      if (this.cancelled.has(id)) return;
      this.play(id, new Uint8Array(buffer, 20), format, sentence, chunk);
    }

    play(id, bytes, format, sentence, chunk) {
      const match = /^pcm_(\d+)$/.exec(format || "");
      const ctx = this.unlock();
      if (!match || !ctx) return;
      const rate = Number(match[1]);
      let data = bytes;
      const carried = this.carry.get(id);
      if (carried) {
        data = new Uint8Array(bytes.length + 1);
        data[0] = carried;
        data.set(bytes, 1);
        this.carry.delete(id);
      }
      if (data.length % 2) {
        this.carry.set(id, data[data.length - 1]);
        data = data.subarray(0, data.length - 1);
      }
      const samples = data.length / 2;
      if (!samples) return;
      const view = new DataView(data.buffer, data.byteOffset, data.length);
      const audio = ctx.createBuffer(1, samples, rate);
      const out = audio.getChannelData(0);
      for (let i = 0; i < samples; i++) out[i] = view.getInt16(i * 2, true) / 32768;
      const source = ctx.createBufferSource();
      source.buffer = audio;
      source.connect(ctx.destination);
      const at = Math.max(this.next, ctx.currentTime + 0.03);
      this.next = at + audio.duration;
      source.messageId = id;
      source.onended = () => {
        this.live.delete(source);
        if (!source.stopped) {
          if (!this.heard.has(id)) this.heard.set(id, new Set());
          this.heard.get(id).add(sentence);
          if (this.heard.size > 200) this.heard.delete(this.heard.keys().next().value);
          this.stats.playedChunks += 1;
          this.stats.played.push([id, sentence, chunk]);
          if (this.stats.played.length > 2000) this.stats.played.splice(0, 1000);
        }
        this.onChange();
      };
      this.live.add(source);
      source.start(at);
      this.stats.scheduledChunks += 1;
      this.onChange();
    }

    /** Stop one message's audio now and ignore its later chunks. */
    cancel(id) {
      this.cancelled.add(normId(id));
      for (const source of [...this.live]) if (source.messageId === normId(id)) this.halt(source);
      this.onChange();
    }

    /** Stop everything playing or scheduled (barge-in, the stop button). */
    stopAll() {
      for (const source of [...this.live]) {
        this.cancelled.add(source.messageId);
        this.halt(source);
      }
      if (this.ctx) this.next = this.ctx.currentTime;
      this.onChange();
    }

    halt(source) {
      source.stopped = true;
      this.stats.stoppedChunks += 1;
      this.live.delete(source);
      try {
        source.stop();
      } catch (_) {
        /* not started yet */
      }
    }

    close() {
      this.stopAll();
      if (this.ctx) this.ctx.close().catch(() => {});
      this.ctx = null;
    }
  }

  // An AudioWorklet that turns the microphone into 16 kHz PCM16, posted in 100 ms buffers.
  const WORKLET = `
class ParleyPcm16 extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / ${PCM_RATE};
    this.pos = 0; this.next = this.step; this.sum = 0; this.count = 0;
    this.out = new Int16Array(${PCM_RATE / 10}); this.n = 0;
    this.port.onmessage = () => this.flush();
  }
  flush() {
    if (this.n) this.port.postMessage(this.out.slice(0, this.n).buffer);
    this.n = 0;
  }
  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    for (let i = 0; i < input.length; i++) {
      this.sum += input[i]; this.count += 1; this.pos += 1;
      if (this.pos >= this.next) {
        const s = Math.max(-1, Math.min(1, this.sum / this.count));
        this.out[this.n++] = s < 0 ? s * 32768 : s * 32767;
        this.sum = 0; this.count = 0; this.next += this.step;
        if (this.n === this.out.length) {
          this.port.postMessage(this.out.buffer, [this.out.buffer]);
          this.out = new Int16Array(${PCM_RATE / 10}); this.n = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("parley-pcm16", ParleyPcm16);
`;

  /** The microphone: AudioWorklet to PCM16 16 kHz, else MediaRecorder WebM/Opus. */
  class Mic {
    constructor(onAudio) {
      this.onAudio = onAudio;
      this.stream = null;
      this.ctx = null;
      this.node = null;
      this.recorder = null;
    }

    static supported() {
      return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
    }

    /** Start capturing; resolves to the format announced in start_listening. */
    async start() {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (Ctx && window.AudioWorkletNode) {
        try {
          this.ctx = new Ctx();
          const url = URL.createObjectURL(new Blob([WORKLET], { type: "text/javascript" }));
          try {
            await this.ctx.audioWorklet.addModule(url);
          } finally {
            URL.revokeObjectURL(url);
          }
          const source = this.ctx.createMediaStreamSource(this.stream);
          this.node = new AudioWorkletNode(this.ctx, "parley-pcm16");
          this.node.port.onmessage = (event) => this.onAudio(event.data);
          source.connect(this.node);
          if (this.ctx.state === "suspended") await this.ctx.resume();
          return { format: "pcm16", sample_rate: PCM_RATE };
        } catch (_) {
          if (this.ctx) this.ctx.close().catch(() => {});
          this.ctx = null;
          this.node = null; // fall through to MediaRecorder (e.g. a page CSP refusing blob:)
        }
      }
      const type = ["audio/webm;codecs=opus", "audio/webm"].find(
        (t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t),
      );
      if (!type) {
        this.stop();
        throw new Error("unsupported");
      }
      this.recorder = new MediaRecorder(this.stream, { mimeType: type });
      this.recorder.ondataavailable = async (event) => {
        if (event.data && event.data.size) this.onAudio(await event.data.arrayBuffer());
      };
      this.recorder.start(250);
      return { format: "webm" };
    }

    stop() {
      if (this.node) {
        this.node.port.postMessage("flush");
        this.node.disconnect();
      }
      if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
      if (this.stream) for (const track of this.stream.getTracks()) track.stop();
      const ctx = this.ctx;
      if (ctx) setTimeout(() => ctx.close().catch(() => {}), 200);
      this.stream = this.ctx = this.node = this.recorder = null;
    }
  }

  // ------------------------------------------------------------------ view

  const CSS = `
:host { all: initial; }
* { box-sizing: border-box; }
.root { --accent: var(--parley-accent, #1d4ed8); --accent-text: var(--parley-accent-text, #ffffff);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111827; }
.sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
button { font: inherit; cursor: pointer; }
button:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
textarea:focus { outline: 2px solid var(--accent); outline-offset: 1px; border-color: var(--accent); }
svg { width: 22px; height: 22px; fill: currentColor; display: block; }
.launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; width: 58px; height: 58px;
  border-radius: 50%; border: none; background: var(--accent); color: var(--accent-text);
  box-shadow: 0 6px 20px rgba(0,0,0,.25); display: grid; place-items: center; }
.launcher svg { width: 28px; height: 28px; }
.panel { position: fixed; right: 20px; bottom: 92px; z-index: 2147483000; width: 380px;
  height: min(600px, calc(100vh - 112px)); display: flex; flex-direction: column; background: #fff;
  border-radius: 14px; box-shadow: 0 12px 40px rgba(0,0,0,.28); overflow: hidden; border: 1px solid #d1d5db; }
.panel[hidden] { display: none; }
header { display: flex; align-items: center; gap: 8px; padding: 12px 12px 12px 16px;
  background: var(--accent); color: var(--accent-text); }
header .heading { flex: 1; min-width: 0; }
h2 { margin: 0; font-size: 16px; font-weight: 650; }
.subtitle, .status { margin: 0; font-size: 12.5px; opacity: .95; }
.status::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%;
  margin-right: 6px; background: #86efac; vertical-align: 1px; }
.status[data-state="connecting"]::before, .status[data-state="reconnecting"]::before { background: #fde047; }
.status[data-state="offline"]::before, .status[data-state="refused"]::before { background: #fca5a5; }
.icon-button { border: none; background: transparent; color: inherit; padding: 8px; border-radius: 8px; }
.icon-button:hover { background: rgba(255,255,255,.15); }
.scroller { flex: 1; overflow-y: auto; padding: 14px 14px 6px; background: #f9fafb; }
.msg { display: flex; flex-direction: column; margin: 0 0 12px; max-width: 86%; }
.msg.user { margin-left: auto; align-items: flex-end; }
.msg[hidden], .meta[hidden] { display: none; }
.name { font-size: 12.5px; font-weight: 650; color: #374151; margin: 0 0 3px 2px; }
.bubble { padding: 9px 12px; border-radius: 14px; white-space: pre-wrap; overflow-wrap: anywhere;
  background: #ffffff; border: 1px solid #e5e7eb; color: #111827; }
.msg.user .bubble { background: var(--accent); color: var(--accent-text); border-color: transparent;
  border-bottom-right-radius: 4px; }
.msg.assistant .bubble { border-bottom-left-radius: 4px; }
.msg.streaming .bubble::after { content: "▍"; color: #6b7280; }
.meta { font-size: 12px; color: #4b5563; margin: 3px 4px 0; }
.meta button { border: none; background: none; color: #1d4ed8; text-decoration: underline; padding: 0 0 0 4px; }
.note { text-align: center; font-size: 13px; color: #374151; margin: 0 8px 12px; }
.note.error { color: #991b1b; background: #fef2f2; border: 1px solid #fecaca; border-radius: 10px; padding: 7px 10px; }
.note button { margin-top: 6px; border: 1px solid var(--accent); color: var(--accent); background: #fff;
  border-radius: 999px; padding: 5px 12px; }
.typing { display: inline-flex; gap: 4px; padding: 11px 14px; margin: 0 0 12px; background: #fff;
  border: 1px solid #e5e7eb; border-radius: 14px; }
.typing[hidden] { display: none; }
.typing span { width: 7px; height: 7px; border-radius: 50%; background: #6b7280; animation: blink 1.2s infinite; }
.typing span:nth-child(2) { animation-delay: .2s; } .typing span:nth-child(3) { animation-delay: .4s; }
@keyframes blink { 0%, 80%, 100% { opacity: .25; } 40% { opacity: 1; } }
@media (prefers-reduced-motion: reduce) { .typing span { animation: none; opacity: .7; } }
.interim { padding: 6px 16px; font-size: 13px; font-style: italic; color: #374151; background: #eef2ff; }
.interim[hidden] { display: none; }
form { display: flex; align-items: flex-end; gap: 6px; padding: 10px; border-top: 1px solid #e5e7eb; background: #fff; }
textarea { flex: 1; resize: none; min-height: 42px; max-height: 120px; padding: 10px 12px; font: inherit;
  color: #111827; border: 1px solid #6b7280; border-radius: 10px; background: #fff; }
textarea::placeholder { color: #6b7280; }
form .icon-button { color: #374151; width: 42px; height: 42px; display: grid; place-items: center; }
form .icon-button:hover { background: #f3f4f6; }
form .icon-button[hidden] { display: none; }
.send { background: var(--accent) !important; color: var(--accent-text) !important; }
.mic[aria-pressed="true"] { background: #b91c1c !important; color: #fff !important; }
@media (max-width: 480px) {
  .panel { right: 0; bottom: 0; width: 100vw; height: 100vh; height: 100dvh; border-radius: 0; }
}
`;

  class Widget {
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

    // -- voice

    on_speech_started() {
      this.cutIn("speech");
    }

    on_transcription_update(f) {
      this.cutIn("speech");
      this.interimText(f.text || "");
    }

    /**
     * Barge-in. The server interrupts a reply it is still sending (``interrupted``, when the
     * template allows it); audio it has finished sending plays from our buffer, so that tail is
     * silenced here, and the server is told (``interrupt``) so that it stores the reply as
     * interrupted.
     */
    cutIn(cause) {
      const ids = this.player.playingIds();
      if (!ids.length || !ids.every((id) => this.audioDone.has(id))) return;
      this.interrupt(ids[ids.length - 1], cause);
      this.player.stopAll();
    }

    /** The stop button: stop the reply being written or spoken, here and on the server. */
    stopReply() {
      const streaming = this.items.filter((x) => x.role === "assistant" && !x.complete && x.id);
      const playing = this.player.playingIds();
      const target = streaming.length ? streaming[streaming.length - 1].id : playing[playing.length - 1];
      if (target) this.interrupt(target, "stop");
      this.player.stopAll();
      this.input.focus();
    }

    interrupt(id, cause) {
      const data = { message_id: id, cause };
      if (this.audioOn || this.player.playedSentences(id)) data.played_sentences = this.player.playedSentences(id);
      this.link.send({ type: "interrupt", data });
    }

    on_transcription_finished(f) {
      this.interimText("");
      const text = (f.text || "").trim();
      if (!text) return;
      const item = this.newItem({ role: "user", text, state: "sent", voice: true });
      this.inFlight.push(item);
      this.add(item);
    }

    on_audio_complete(f) {
      this.audioDone.add(normId(f.message_id));
      this.refreshControls();
    }

    /** The server says whether replies are spoken, and in which format. */
    on_audio_format(f) {
      if (f.output_format) this.audioFormat = f.output_format;
      if (typeof f.enabled === "boolean") this.audioOn = f.enabled;
    }

    on_listening_stopped(f) {
      // The server ended it (the provider closed, an error): show the microphone as off.
      if (this.listening && f.reason !== "stopped") this.stopMic(false);
    }

    interimText(text) {
      this.interim.hidden = !text && !this.listening;
      this.interim.textContent = text || (this.listening ? this.s.listening : "");
    }

    async toggleMic() {
      if (this.listening) return this.stopMic(true);
      this.player.unlock();
      if (!Mic.supported()) return this.note(this.s.errors.voiceUnsupported, { error: true });
      if (!this.link.open) return this.say(this.s.offline, "offline");
      this.mic = new Mic((buffer) => {
        if (this.listening && this.link.sendBinary(buffer)) this.stats.sentAudioFrames += 1;
      });
      let started;
      try {
        started = await this.mic.start();
      } catch (err) {
        this.mic.stop();
        this.mic = null;
        const unsupported = err && err.message === "unsupported";
        return this.note(unsupported ? this.s.errors.voiceUnsupported : this.s.errors.mic, { error: true });
      }
      this.audioFormat = REPLY_FORMAT;
      this.audioOn = true;
      this.link.send({ type: "audio_settings", data: { enabled: true, output_format: REPLY_FORMAT } });
      this.link.send({ type: "start_listening", data: started });
      this.listening = true;
      this.micBtn.setAttribute("aria-pressed", "true");
      this.micBtn.setAttribute("aria-label", this.s.micStop);
      this.interimText("");
    }

    stopMic(tell) {
      if (this.mic) this.mic.stop();
      this.mic = null;
      if (tell && this.listening) this.link.send({ type: "stop_listening", data: {} });
      this.listening = false;
      this.micBtn.setAttribute("aria-pressed", "false");
      this.micBtn.setAttribute("aria-label", this.s.micStart);
      this.interimText("");
    }

    /** The stop button shows while a reply is being written or spoken. */
    refreshControls() {
      if (!this.stopBtn) return;
      const writing = this.items.some((x) => x.role === "assistant" && !x.complete && x.id);
      const hide = !(writing || this.player.playing);
      if (hide && this.stopBtn.hidden === false && this.stopBtn.matches(":focus")) this.input.focus();
      this.stopBtn.hidden = hide;
    }

    destroy() {
      this.link.close();
      if (this.mic) this.mic.stop();
      this.player.close();
      clearTimeout(this.resumeTimer);
      this.host.remove();
    }

    snapshot() {
      return this.items.filter((x) => x.role !== "note").map((x) => ({
        id: x.id, role: x.role, name: x.name, text: x.text, status: x.status, complete: x.complete, state: x.state,
      }));
    }
  }

  // ------------------------------------------------------------------- API

  function scriptOptions() {
    if (!SCRIPT) return {};
    const d = SCRIPT.dataset;
    const out = {};
    if (d.template) out.template = d.template;
    if (d.title) out.title = d.title;
    if (d.token) out.token = d.token;
    if (d.lang) out.lang = d.lang;
    if (d.voice !== undefined) out.voice = d.voice === "" || d.voice === "true";
    if (d.open !== undefined) out.open = d.open === "" || d.open === "true";
    return out;
  }

  let widget = null;

  const Parley = {
    version: VERSION,
    server: SERVER,
    /** Mount the widget (again) with these options over the script tag's data-* ones. */
    init(options) {
      if (widget) widget.destroy();
      const start = () => {
        widget = new Widget(Object.assign(scriptOptions(), options || {}));
        Parley.__test.widget = widget;
        Parley.__test.stats = widget.stats;
      };
      if (document.body) start();
      else document.addEventListener("DOMContentLoaded", start, { once: true });
      return Parley;
    },
    open: () => widget && widget.open(),
    close: () => widget && widget.close(),
    send: (text) => widget && widget.sendText(String(text)),
    newConversation: () => widget && widget.startNew(),
    destroy() {
      if (widget) widget.destroy();
      widget = null;
    },
    /** For tests: counters and a snapshot of the state. */
    __test: {
      widget: null,
      stats: null,
      get playedChunks() {
        return widget ? widget.stats.playedChunks : 0;
      },
      messages: () => (widget ? widget.snapshot() : []),
      state: () => (widget ? { connection: widget.state, ready: widget.ready,
        conversationId: widget.conversationId, listening: widget.listening } : null),
      dropConnection: () => widget && widget.link.drop(),
    },
  };
  window.Parley = Parley;

  if (!SCRIPT || SCRIPT.dataset.init !== "manual") Parley.init();
})();
