// Styles: the widget's CSS, inside its shadow root.

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
