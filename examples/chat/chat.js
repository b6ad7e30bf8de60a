// loom chat: the browser side of examples/chat.c.
//
// One long-poll loop: GET /api/messages?since=<last id>&boot=<server id>
// returns at once when there are newer messages, else the server holds the
// request until one arrives (or ~25 s pass, then the answer is empty and we
// ask again). POST /api/messages (name, text; form-encoded) adds a message;
// it reaches this page, like every other one, through the poll.
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

  // Exposed for the end-to-end test (tests/e2e/chat_e2e.py) and for curious
  // people with a console.
  const state = { last: 0, boot: null, polls: 0, received: 0, status: 'connecting' };
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
        if (state.boot !== null && data.boot !== state.boot) {
          // The server restarted: its history replaces ours.
          list.replaceChildren();
          state.last = 0;
        }
        state.boot = data.boot;
        append(data.messages);
        if (data.closing) {
          setStatus('stopped', 'server stopped');
          backoff = 1000;
        } else {
          setStatus('live', 'live');
          backoff = 0;
        }
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
      const res = await fetch('/api/messages', {
        method: 'POST',
        body: new URLSearchParams({ name, text }),
      });
      if (!res.ok) {
        let why = `HTTP ${res.status}`;
        try { why = (await res.json()).error || why; } catch (e) { /* not JSON */ }
        throw new Error(why);
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
  pollLoop();
})();
