// Connection and resume: one WebSocket to /ws, reopened with backoff.

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
