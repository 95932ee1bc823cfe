// The public API: window.Parley (init, open, close, send, newConversation, destroy).

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
      // For tests and debugging tools, not an API, and only on pages that opt in by setting
      // window.PARLEY_TEST_HOOKS = true before this script runs (tests/adapters/widget/hooks.js
      // does): the mounted widget, on an event. Other pages never see the widget object.
      if (window.PARLEY_TEST_HOOKS === true) {
        window.dispatchEvent(new CustomEvent("parley:mounted", { detail: widget }));
      }
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
};
window.Parley = Parley;

if (!SCRIPT || SCRIPT.dataset.init !== "manual") Parley.init();
