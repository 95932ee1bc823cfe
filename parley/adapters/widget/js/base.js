// Constants, visible strings and small DOM/storage helpers.

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
