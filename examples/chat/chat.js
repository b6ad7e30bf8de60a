// loom chat: the browser side of examples/chat.c.
//
// Two transports, the same messages:
// - WebSocket (when the browser has it): one connection to
//   /api/ws?since=<last id>&boot=<server id>; the server sends the history
//   after `since`, then every new message and, each second, the live panel's
//   figures. A message is sent on it as a form body (name, text).
// - Long poll (the fallback, or forced with ?transport=poll): GET
//   /api/messages?since=..&boot=.. returns at once when there are newer
//   messages, else the server holds the request until one arrives (or ~25 s
//   pass, then the answer is empty and we ask again). POST /api/messages
//   (name, text; form-encoded) adds a message; it reaches this page, like
//   every other one, through the poll. The panel asks /api/stats every 2 s.
// If the WebSocket cannot be opened at all, the page falls back to long
// polling; once it has worked, a dropped one is reopened with a backoff.
'use strict';

(() => {
  const MAX_SHOWN = 200;
  const $ = (id) => document.getElementById(id);
  const list = $('messages');
  const empty = $('empty');
  const form = $('composer');
  const nameInput = $('name');
  const textInput = $('text');
  const sendButton = $('send');
  const statusEl = $('status');
  const errorEl = $('error');
  const transportEl = $('transport');
  const params = new URLSearchParams(location.search);
  const wantPoll = params.get('transport') === 'poll' || typeof WebSocket !== 'function';

  // Exposed for the end-to-end test (tests/e2e/chat_e2e.py) and for curious
  // people with a console.
  const state = {
    last: 0, boot: null, polls: 0, received: 0, status: 'connecting',
    transport: wantPoll ? 'long-poll' : 'websocket', sockets: 0, stats: null,
  };
  window.loomChat = state;

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function setStatus(s, text) {
    state.status = s;
    statusEl.dataset.state = s;
    statusEl.textContent = text;
  }

  function showError(text) {
    errorEl.textContent = text;
    errorEl.hidden = !text;
  }

  function hue(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % 360;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function render(m) {
    const li = document.createElement('li');
    li.className = 'msg';
    li.dataset.id = m.id;
    if (m.name === nameInput.value.trim()) li.classList.add('mine');

    const avatar = document.createElement('div');
    avatar.className = 'avatar';
    avatar.style.background = `hsl(${hue(m.name)} 55% 48%)`;
    avatar.textContent = [...m.name][0] || '?';

    const bubble = document.createElement('div');
    bubble.className = 'bubble';
    const meta = document.createElement('div');
    meta.className = 'meta';
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = m.name;
    const when = document.createElement('time');
    when.dateTime = new Date(m.time).toISOString();
    when.textContent = clock(m.time);
    meta.append(who, when);
    const body = document.createElement('div');
    body.className = 'body';
    body.textContent = m.text; // never innerHTML: the text is someone else's
    bubble.append(meta, body);

    li.append(avatar, bubble);
    return li;
  }

  function append(messages) {
    if (!messages.length) return;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    for (const m of messages) {
      if (m.id <= state.last) continue; // already shown
      list.append(render(m));
      state.last = m.id;
      state.received++;
    }
    while (list.children.length > MAX_SHOWN) list.firstElementChild.remove();
    empty.hidden = list.children.length > 0;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  // An answer to a poll, or an update on the WebSocket. Returns true when the
  // server is closing.
  function onUpdate(data) {
    if (state.boot !== null && data.boot !== state.boot) {
      // The server restarted: its history replaces ours.
      list.replaceChildren();
      state.last = 0;
    }
    state.boot = data.boot;
    append(data.messages);
    if (data.closing) {
      setStatus('stopped', 'server stopped');
      return true;
    }
    setStatus('live', 'live');
    return false;
  }

  // --- The live panel -------------------------------------------------------
  const fmtBytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB`
    : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
  function showStats(st) {
    state.stats = st;
    $('st-ws').textContent = st.websocket;
    $('st-poll').textContent = st.long_poll;
    $('st-tcp').textContent = st.tcp;
    $('st-rate').textContent = `${st.posted_per_s.toFixed(1)} in, ${st.delivered_per_s.toFixed(1)} out`;
    $('st-bytes').textContent = `${fmtBytes(st.read_per_s)} / ${fmtBytes(st.written_per_s)}`;
    $('st-rss').textContent = fmtBytes(st.rss);
  }

  async function statsLoop() {
    // Long-polling pages ask; WebSocket pages are told.
    for (;;) {
      await sleep(2000);
      if (state.transport !== 'long-poll' || state.status === 'stopped') continue;
      try {
        const res = await fetch('/api/stats', { cache: 'no-store' });
        if (res.ok) showStats((await res.json()).stats);
      } catch (e) { /* the poll loop reports the server's state */ }
    }
  }

  function setTransport(t) {
    state.transport = t;
    transportEl.textContent = t === 'websocket' ? 'WebSocket' : 'long poll';
    transportEl.dataset.transport = t;
  }

  // --- WebSocket --------------------------------------------------------------
  let ws = null;
  const pending = []; // resolve/reject of sends waiting for {"sent"} / {"error"}

  // Resolves with true when the socket closes after it had opened, false if it
  // never opened (then the caller falls back to long polling).
  function wsOnce() {
    return new Promise((resolve) => {
      const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      let url = `${proto}//${location.host}/api/ws?since=${state.last}`;
      if (state.boot !== null) url += `&boot=${state.boot}`;
      let opened = false;
      let sock;
      try {
        sock = new WebSocket(url);
      } catch (e) {
        resolve(false);
        return;
      }
      sock.onopen = () => {
        opened = true;
        ws = sock;
        state.sockets++;
        state.extensions = sock.extensions; // "permessage-deflate..." when negotiated
      };
      sock.onmessage = (ev) => {
        let data;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        if (data.stats) showStats(data.stats);
        else if ('sent' in data || 'error' in data) {
          const p = pending.shift();
          if (p) p(data);
        } else if (data.messages) onUpdate(data);
      };
      sock.onclose = () => {
        if (ws === sock) ws = null;
        while (pending.length) pending.shift()({ error: 'connection lost' });
        resolve(opened);
      };
    });
  }

  async function wsLoop() {
    let backoff = 0;
    let everOpened = false;
    for (;;) {
      const opened = await wsOnce();
      everOpened = everOpened || opened;
      if (!everOpened) {
        // No WebSocket through here (a proxy, a policy): long polling works
        // wherever HTTP does.
        setTransport('long-poll');
        pollLoop();
        return;
      }
      if (state.status === 'stopped') {
        backoff = 1000;
      } else {
        setStatus('offline', 'offline, retrying');
        backoff = opened ? 500 : Math.min(Math.max(backoff * 2, 500), 5000);
      }
      await sleep(backoff);
    }
  }

  function wsSend(body) {
    return new Promise((resolve) => {
      pending.push(resolve);
      ws.send(body);
    });
  }

  // --- Long poll ----------------------------------------------------------------
  async function pollLoop() {
    let backoff = 0;
    for (;;) {
      let url = `/api/messages?since=${state.last}`;
      if (state.boot !== null) url += `&boot=${state.boot}`;
      try {
        state.polls++;
        const res = await fetch(url, { cache: 'no-store' });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const data = await res.json();
        backoff = onUpdate(data) ? 1000 : 0;
      } catch (e) {
        if (state.status !== 'stopped') setStatus('offline', 'offline, retrying');
        backoff = Math.min(Math.max(backoff * 2, 500), 5000);
      }
      if (backoff) await sleep(backoff);
    }
  }

  async function send(ev) {
    ev.preventDefault();
    const name = nameInput.value.trim();
    const text = textInput.value.trim();
    if (!name || !text) return;
    localStorage.setItem('loom-chat-name', name);
    sendButton.disabled = true;
    try {
      const body = new URLSearchParams({ name, text });
      if (state.transport === 'websocket' && ws && ws.readyState === WebSocket.OPEN) {
        const answer = await wsSend(body.toString());
        if (answer.error) throw new Error(answer.error);
      } else {
        const res = await fetch('/api/messages', { method: 'POST', body });
        if (!res.ok) {
          let why = `HTTP ${res.status}`;
          try { why = (await res.json()).error || why; } catch (e) { /* not JSON */ }
          throw new Error(why);
        }
      }
      textInput.value = '';
      showError('');
    } catch (e) {
      showError(`Not sent: ${e.message}`);
    } finally {
      sendButton.disabled = false;
      textInput.focus();
    }
  }

  nameInput.value = localStorage.getItem('loom-chat-name') ||
    `guest-${Math.floor(1000 + Math.random() * 9000)}`;
  form.addEventListener('submit', send);
  textInput.focus();
  setTransport(state.transport);
  if (state.transport === 'websocket') wsLoop();
  else pollLoop();
  statsLoop();
})();
