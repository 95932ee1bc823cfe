// Test hooks for the widget, loaded into test pages only (page.add_init_script): the production
// script exposes nothing for tests on window.Parley; a page that sets window.PARLEY_TEST_HOOKS
// (this file does) gets the mounted widget in a "parley:mounted" event, and this builds
// window.__parleyTest from it.
(() => {
  window.PARLEY_TEST_HOOKS = true;
  let widget = null;
  window.addEventListener("parley:mounted", (event) => {
    widget = event.detail;
  });
  window.__parleyTest = {
    get widget() {
      return widget;
    },
    get stats() {
      return widget ? widget.stats : null;
    },
    get playedChunks() {
      return widget ? widget.stats.playedChunks : 0;
    },
    messages: () =>
      widget
        ? widget.items
            .filter((x) => x.role !== "note")
            .map((x) => ({
              id: x.id, role: x.role, name: x.name, text: x.text, status: x.status,
              complete: x.complete, state: x.state,
            }))
        : [],
    state: () =>
      widget
        ? { connection: widget.state, ready: widget.ready, conversationId: widget.conversationId,
            listening: widget.listening }
        : null,
    dropConnection: () => widget && widget.link.drop(),
  };
})();
