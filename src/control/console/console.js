// pusher-local's debug console: plain JavaScript, no build step, no dependencies, nothing
// loaded from the network. The server serves this file at /pusher-local/console/console.js.
//
// Data in:  EventSource /pusher-local/stream (`hello`, `record`, `missed`), and polling of
//           /pusher-local/channels, /connections, /webhooks, /replays, /fixtures, /recordings.
// Data out: POST /pusher-local/publish, /disconnect, /webhooks/{id}/resend, /replays,
//           /recording, /recordings/{name}/export; DELETE /pusher-local/replays[/{id}],
//           /recording (same origin, JSON bodies).
//
// Everything that comes from the server or from clients is put in the page with textContent,
// never as HTML. The stream keeps at most MAX_RECORDS records (and as many rows).
(function () {
  'use strict';

  const MAX_RECORDS = 2000;
  const MAX_RECENT_SENDS = 15;
  // Rows drawn in one go (every 16 ms); a burst beyond it is summarised in one row.
  const MAX_DRAW_PER_FLUSH = 400;
  const POLL_FAST_MS = 1000;
  const POLL_SLOW_MS = 3000;
  const STORAGE_PREFIX = 'pusher-local-console.';
  // The GETs this page makes to refresh its panels; "hide console polling" hides their api records.
  const OWN_POLL_RE = /^\/pusher-local\/(channels|connections|webhooks|replays|fixtures|recordings|apps|stream|console)(\/|\?|$)/;

  const KIND_LABEL = {
    text: 'text',
    connect: 'connect',
    disconnect: 'closed',
    refused: 'refused',
    frame_in: 'c→s',
    frame_out: 's→c',
    publish: 'publish',
    api: 'api',
    webhook: 'webhook',
    recorder: 'rec',
    client_error: 'client err',
    signature: 'signature',
    error: 'error',
    cluster: 'cluster',
    missed: 'missed',
  };

  // ---------------------------------------------------------------------------------------
  // Small DOM helpers

  const $ = (id, root) => (root || document).querySelector(`[data-testid="${id}"]`);

  /** `el('div', {class: 'x', 'data-testid': 'y'}, child, 'text', …)`; text is always text. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [name, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) continue;
        if (name === 'class') node.className = value;
        else if (name === 'text') node.textContent = value;
        else if (name.startsWith('on') && typeof value === 'function') node.addEventListener(name.slice(2), value);
        else node.setAttribute(name, value === true ? '' : String(value));
      }
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many || `${one}s`}`;
  }

  function fmtTime(time) {
    const m = /T(\d\d:\d\d:\d\d(?:\.\d{1,3})?)/.exec(time || '');
    return m ? m[1] : time || '';
  }

  function nowIso() {
    const d = new Date();
    const pad = (n, w = 2) => String(n).padStart(w, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  /** A local wall-clock time, 24-hour (HH:MM:SS). */
  function fmtClock(ms) {
    if (!ms) return '';
    const d = new Date(ms);
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
  }

  function fmtDuration(ms) {
    if (ms === undefined || ms === null) return '';
    const s = Math.round(ms / 1000);
    if (s < 60) return ms < 10000 && ms % 1000 ? `${(ms / 1000).toFixed(1)} s` : `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
  }

  function compact(value) {
    if (value === undefined) return '';
    if (typeof value === 'string') return value;
    try {
      return JSON.stringify(value);
    } catch (_) {
      return String(value);
    }
  }

  function pretty(value) {
    if (typeof value === 'string') return value;
    return JSON.stringify(value, null, 2);
  }

  /** Pretty JSON with token classes (strings, keys, numbers, literals), as DOM nodes. */
  function highlighted(text) {
    const frag = document.createDocumentFragment();
    const re = /("(?:\\u[0-9a-fA-F]{4}|\\[^u]|[^\\"])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
    let last = 0;
    let m;
    while ((m = re.exec(text))) {
      if (m.index > last) frag.append(text.slice(last, m.index));
      if (m[1] !== undefined) {
        frag.append(el('span', { class: m[2] ? 'j-key' : 'j-str' }, m[1]));
        if (m[2]) frag.append(m[2]);
      } else if (m[3] !== undefined) {
        frag.append(el('span', { class: 'j-lit' }, m[3]));
      } else {
        frag.append(el('span', { class: 'j-num' }, m[4]));
      }
      last = re.lastIndex;
    }
    if (last < text.length) frag.append(text.slice(last));
    return frag;
  }

  function globRe(glob) {
    const text = (glob || '').trim();
    if (!text) return null;
    const body = text.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    return new RegExp(`^${body}$`);
  }

  async function copyText(text, button) {
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch (_) {
      ok = false;
    }
    if (!ok) {
      const area = el('textarea', { class: 'offscreen' });
      area.value = text;
      document.body.append(area);
      area.select();
      try {
        ok = document.execCommand('copy');
      } catch (_) {
        ok = false;
      }
      area.remove();
    }
    if (button) {
      const label = button.dataset.label || button.textContent;
      button.dataset.label = label;
      button.textContent = ok ? 'copied ✓' : 'copy failed';
      setTimeout(() => {
        button.textContent = label;
      }, 1200);
    }
    return ok;
  }

  function storageGet(name, fallback) {
    try {
      const text = localStorage.getItem(STORAGE_PREFIX + name);
      return text === null ? fallback : JSON.parse(text);
    } catch (_) {
      return fallback;
    }
  }

  function storageSet(name, value) {
    try {
      localStorage.setItem(STORAGE_PREFIX + name, JSON.stringify(value));
    } catch (_) {
      /* private mode or full: the page works without it */
    }
  }

  /** fetch() on the control API: JSON in and out; throws Error(server's message). */
  async function api(method, path, body) {
    const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new Error(`the server did not answer (${err.message})`);
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : {};
    } catch (_) {
      json = null;
    }
    if (!response.ok) {
      const message = json && json.error ? json.error : text || response.statusText;
      const err = new Error(`${response.status}: ${message}`);
      err.status = response.status;
      throw err;
    }
    return json;
  }

  // ---------------------------------------------------------------------------------------
  // JSON validation with a precise position (the same verdict as JSON.parse, with our words)

  /** Finds where `text` stops being JSON: {pos, message}, or null when it is valid. */
  function locateJsonError(text) {
    let i = 0;
    const n = text.length;
    const found = () => {
      if (i >= n) return 'the end of the text';
      const c = text[i];
      const code = c.charCodeAt(0);
      if (code < 0x20) return c === '\n' ? 'a line break' : c === '\t' ? 'a tab' : `the control character U+${code.toString(16).padStart(4, '0')}`;
      return `'${c}'`;
    };
    const fail = (message) => {
      throw { pos: i, message };
    };
    const space = () => {
      while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
    };
    const string = () => {
      i++; // the opening quote
      for (;;) {
        if (i >= n) fail('this string is never closed (a " is missing)');
        const c = text[i];
        if (c === '"') {
          i++;
          return;
        }
        if (c === '\\') {
          const e = text[i + 1];
          if (e === 'u') {
            if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
              i += 2;
              fail('\\u must be followed by 4 hex digits');
            }
            i += 6;
            continue;
          }
          if (e === undefined || '"\\/bfnrt'.indexOf(e) < 0) {
            i++;
            fail(`invalid escape \\${e === undefined ? '' : e} (JSON knows \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)`);
          }
          i += 2;
          continue;
        }
        if (c.charCodeAt(0) < 0x20) fail(`${found()} inside a string (write it as \\n, \\t, …)`);
        i++;
      }
    };
    const number = () => {
      const re = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
      re.lastIndex = i;
      const m = re.exec(text);
      if (!m || !m[0] || m[0] === '-') fail(`expected a number, found ${found()}`);
      i += m[0].length;
      if (i < n && /[0-9.eE]/.test(text[i])) fail(`a malformed number (leading zeros, a lone '.', or a bad exponent)`);
    };
    let value = null;
    const object = () => {
      i++;
      space();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        space();
        if (text[i] !== '"') {
          if (text[i] === '}') fail("a property name was expected after ',' (JSON allows no trailing comma)");
          if (text[i] === "'") fail('property names need double quotes, not single quotes');
          if (i < n && /[A-Za-z_$]/.test(text[i])) fail('property names need double quotes');
          fail(`expected a property name in double quotes, found ${found()}`);
        }
        string();
        space();
        if (text[i] !== ':') fail(`expected ':' after the property name, found ${found()}`);
        i++;
        value();
        space();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail(`expected ',' or '}' after the property value, found ${found()}`);
      }
    };
    const array = () => {
      i++;
      space();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        space();
        if (text[i] === ']') fail("a value was expected after ',' (JSON allows no trailing comma)");
        value();
        space();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail(`expected ',' or ']' after the array element, found ${found()}`);
      }
    };
    value = () => {
      space();
      if (i >= n) fail('expected a value, found the end of the text');
      const c = text[i];
      if (c === '{') return object();
      if (c === '[') return array();
      if (c === '"') return string();
      if (c === '-' || (c >= '0' && c <= '9')) return number();
      for (const word of ['true', 'false', 'null']) {
        if (text.startsWith(word, i)) {
          i += word.length;
          return undefined;
        }
      }
      if (c === "'") fail('strings need double quotes, not single quotes');
      fail(`expected a value (object, array, string, number, true, false or null), found ${found()}`);
      return undefined;
    };
    try {
      if (!text.trim()) {
        return { pos: 0, message: 'the data is empty: write JSON, e.g. {} or "text"' };
      }
      value();
      space();
      if (i < n) fail(`unexpected ${found()} after the end of the JSON value`);
      return null;
    } catch (err) {
      if (err && typeof err.pos === 'number') return err;
      throw err;
    }
  }

  /** {ok:true} or {ok:false, line, column, pos, message, excerpt}. */
  function validateJson(text) {
    let parseError = null;
    try {
      JSON.parse(text);
    } catch (err) {
      parseError = err;
    }
    if (!parseError) return { ok: true };
    let where = locateJsonError(text);
    if (!where) {
      // Our reading disagrees with the browser's: use its position when it gives one.
      const m = /position (\d+)/.exec(parseError.message);
      where = { pos: m ? Number(m[1]) : 0, message: parseError.message };
    }
    const pos = Math.min(where.pos, text.length);
    const before = text.slice(0, pos);
    const line = before.split('\n').length;
    const lineStart = before.lastIndexOf('\n') + 1;
    const column = pos - lineStart + 1;
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    const source = text.slice(lineStart, lineEnd).replace(/\t/g, ' ');
    const gutter = `${line} | `;
    const excerpt = `${gutter}${source}\n${' '.repeat(gutter.length - 2)}| ${' '.repeat(column - 1)}^`;
    return { ok: false, line, column, pos, message: where.message, excerpt };
  }

  // ---------------------------------------------------------------------------------------
  // State

  const state = {
    apps: [],
    records: [],
    queue: [],
    pending: [],
    pausedCount: 0,
    paused: false,
    newestFirst: storageGet('newestFirst', true),
    missedTotal: 0,
    seq: 0,
    filter: null,
    channels: [],
    connections: [],
    webhooks: [],
    openWebhooks: new Set(),
    resendUrls: new Map(),
    resendResults: new Map(),
    fixtures: null,
    replays: [],
    finishedReplays: [],
    stoppedReplays: new Set(),
    recordings: null,
    sendChannels: [],
    recentSends: storageGet('recentSends', []),
    activeTab: 'channels',
    streamState: 'connecting',
  };

  // ---------------------------------------------------------------------------------------
  // Stream

  const list = $('stream-list');

  function setStreamState(name, text) {
    state.streamState = name;
    const status = $('stream-status');
    status.dataset.state = name;
    status.querySelector('.status-text').textContent = text;
  }

  let source = null;
  let helloTimer = null;
  function connectStream() {
    if (source) source.close();
    setStreamState('connecting', 'connecting…');
    source = new EventSource('/pusher-local/stream');
    const mine = source;
    source.addEventListener('open', () => setStreamState('live', 'live'));
    source.addEventListener('hello', (e) => {
      setStreamState('live', 'live');
      try {
        onHello(JSON.parse(e.data));
      } catch (err) {
        console.error('pusher-local console: bad hello', err);
      }
    });
    source.addEventListener('record', (e) => {
      let record;
      try {
        record = JSON.parse(e.data);
      } catch (err) {
        record = { kind: 'error', time: nowIso(), message: `unreadable record: ${e.data}` };
      }
      onRecord(record);
    });
    source.addEventListener('missed', (e) => {
      let n = 0;
      try {
        n = Number(JSON.parse(e.data).missed) || 0;
      } catch (_) {
        n = 0;
      }
      onMissed(n);
    });
    source.addEventListener('error', () => {
      if (mine !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        // Refused outright (not an event stream): say why, and try again ourselves.
        setStreamState('down', 'no stream: retrying…');
        fetch('/pusher-local/stream', { headers: { Accept: 'application/json' }, cache: 'no-store' })
          .then(async (response) => {
            if (response.ok) {
              if (response.body) response.body.cancel();
              return;
            }
            const answer = await response.json().catch(() => null);
            const why = answer && answer.error ? answer.error : `HTTP ${response.status}`;
            if (mine === source) setStreamState('down', `no stream: ${why} (retrying)`);
          })
          .catch(() => {});
        setTimeout(() => {
          if (mine === source) connectStream();
        }, 3000);
      } else {
        setStreamState('down', 'disconnected: reconnecting…');
      }
    });
    clearTimeout(helloTimer);
    helloTimer = setTimeout(() => {
      if (!state.apps.length) loadAppsFallback();
    }, 2000);
  }

  async function loadAppsFallback() {
    try {
      const answer = await api('GET', '/pusher-local/apps');
      onHello({ apps: (answer.apps || []).map((a) => ({ id: a.id, key: a.key })) });
    } catch (_) {
      /* the stream's hello will come */
    }
  }

  function onHello(hello) {
    state.apps = Array.isArray(hello.apps) ? hello.apps : [];
    const holder = $('apps');
    holder.textContent = '';
    for (const app of state.apps) {
      holder.append(el('span', { class: 'app-chip', title: `app_id ${app.id}, key ${app.key}` }, el('span', { class: 'muted' }, 'app '), app.id, el('span', { class: 'muted' }, ` · ${app.key}`)));
    }
    if (hello.version) holder.append(el('span', { class: 'muted small-text' }, `v${hello.version}`));
    fillAppSelect($('filter-app'), 'all apps');
    fillAppSelect($('send-app'));
    fillAppSelect($('replay-app'));
    updateChannelSuggestions();
  }

  function fillAppSelect(select, allLabel) {
    const previous = select.value;
    select.textContent = '';
    if (allLabel !== undefined) select.append(el('option', { value: '' }, allLabel));
    for (const app of state.apps) select.append(el('option', { value: app.id }, `${app.id} (${app.key})`));
    if ([...select.options].some((o) => o.value === previous)) select.value = previous;
    select.closest('label') && show(select.closest('label'), allLabel !== undefined || state.apps.length > 1);
  }

  function onRecord(record) {
    record._id = ++state.seq;
    sideEffects(record);
    if (state.paused) {
      state.pending.push(record);
      // Counted as the list would show it (what the filters let through).
      if (currentFilter()(record)) state.pausedCount++;
      if (state.pending.length > MAX_RECORDS) state.pending.shift();
      $('paused-count').textContent = String(state.pausedCount);
      updatePauseButton();
      return;
    }
    addRecord(record);
  }

  function onMissed(n) {
    if (!n) return;
    state.missedTotal += n;
    $('missed-text').textContent =
      `The console fell behind: ${plural(n, 'record')} ${n === 1 ? 'was' : 'were'} not shown` +
      (state.missedTotal !== n ? ` (${state.missedTotal} since this page opened)` : '') +
      '. The server drops records for a slow page instead of waiting for it; a narrower filter or fewer frames helps.';
    show($('missed-banner'), true);
    const marker = { kind: 'missed', time: nowIso(), missed: n, _id: ++state.seq };
    if (state.paused) state.pending.push(marker);
    else addRecord(marker);
  }

  function addRecord(record) {
    state.records.push(record);
    state.queue.push(record);
    while (state.records.length > MAX_RECORDS) {
      const old = state.records.shift();
      old._dropped = true;
      if (old._el) {
        old._el.remove();
        old._el = null;
      }
    }
    if (state.queue.length > MAX_RECORDS) state.queue.splice(0, state.queue.length - MAX_RECORDS);
    scheduleFlush();
  }

  let flushTimer = null;
  function scheduleFlush() {
    if (flushTimer === null) flushTimer = setTimeout(flush, 16);
  }

  function atNewestEnd() {
    if (state.newestFirst) return list.scrollTop <= 4;
    return list.scrollHeight - list.scrollTop - list.clientHeight <= 24;
  }

  function flush(all) {
    flushTimer = null;
    const queue = state.queue;
    state.queue = [];
    const stick = atNewestEnd();
    const filter = currentFilter();
    const frag = document.createDocumentFragment();
    const place = (row) => {
      if (state.newestFirst) frag.insertBefore(row, frag.firstChild);
      else frag.append(row);
    };
    let matching = queue.filter((record) => !record._dropped && !record._el && filter(record));
    // A burst: draw the newest, say how many were not drawn (a filter change or clear redraws).
    if (!all && matching.length > MAX_DRAW_PER_FLUSH) {
      const skipped = matching.length - MAX_DRAW_PER_FLUSH;
      matching = matching.slice(skipped);
      place(skippedRow(skipped));
    }
    for (const record of matching) place(buildRow(record));
    if (frag.firstChild) {
      if (state.newestFirst) list.insertBefore(frag, list.firstChild);
      else list.append(frag);
    }
    while (list.childElementCount > MAX_RECORDS) {
      const victim = state.newestFirst ? list.lastElementChild : list.firstElementChild;
      if (victim._record) victim._record._el = null;
      victim.remove();
    }
    if (stick) {
      if (state.newestFirst) list.scrollTop = 0;
      else list.scrollTop = list.scrollHeight;
    }
    updateFooter();
  }

  function renderAll() {
    for (const record of state.records) record._el = null;
    list.textContent = '';
    state.queue = state.records.slice();
    if (flushTimer !== null) clearTimeout(flushTimer);
    flush(true);
    if (state.newestFirst) list.scrollTop = 0;
    else list.scrollTop = list.scrollHeight;
  }

  function updateFooter() {
    const shown = list.childElementCount;
    const total = state.records.length;
    const empty = $('stream-empty');
    show(empty, shown === 0);
    if (shown === 0) {
      empty.textContent =
        total === 0
          ? 'Waiting for traffic: connect a client, or send an event from the Send tab.'
          : `Nothing to show: the filters (or "hide console polling") hide all ${plural(total, 'record')} kept.`;
    }
    const parts = [`${shown} of ${plural(total, 'record')} shown`];
    if (total >= MAX_RECORDS) parts.push(`the list keeps the last ${MAX_RECORDS}`);
    if (state.missedTotal) parts.push(`${state.missedTotal} missed`);
    $('stream-foot').textContent = parts.join(' · ');
  }

  // ---- filters

  const filterInputs = ['filter-app', 'filter-channel', 'filter-event', 'filter-socket', 'filter-kind', 'filter-search', 'hide-own'].map((id) => $(id));

  function isProblem(r) {
    switch (r.kind) {
      case 'refused':
      case 'signature':
      case 'error':
      case 'client_error':
      case 'missed':
        return true;
      case 'api':
        return r.status >= 400;
      case 'webhook':
        return r.ok === false;
      case 'recorder':
      case 'cluster':
        return r.error === true;
      case 'publish':
        return r.delivered === 0;
      case 'disconnect':
        return typeof r.code === 'number' && r.code >= 4000 && r.code < 4200;
      default:
        return false;
    }
  }

  function currentFilter() {
    if (state.filter) return state.filter;
    const app = $('filter-app').value;
    const channel = globRe($('filter-channel').value);
    const event = globRe($('filter-event').value);
    const socket = globRe($('filter-socket').value);
    const kind = $('filter-kind').value;
    const text = $('filter-search').value.trim().toLowerCase();
    const hideOwn = $('hide-own').checked;
    state.filter = (r) => {
      if (r.kind === 'missed') return true;
      if (hideOwn && r.kind === 'api' && r.method === 'GET' && r.status < 400 && OWN_POLL_RE.test(r.path || '')) return false;
      if (app && r.app !== undefined && String(r.app) !== app) return false;
      if (app && r.app === undefined && (r.kind === 'publish' || r.kind.startsWith('frame'))) return false;
      if (channel && !(r.channel !== undefined && channel.test(r.channel))) return false;
      if (event && !(r.event !== undefined && event.test(r.event))) return false;
      if (socket && !(r.socket !== undefined && socket.test(r.socket))) return false;
      if (kind) {
        if (kind === '-frames') {
          if (r.kind === 'frame_in' || r.kind === 'frame_out') return false;
        } else if (kind === 'events') {
          if (!(r.kind === 'publish' || (r.kind === 'frame_out' && !(r.event || '').startsWith('pusher')))) return false;
        } else if (kind === 'problems') {
          if (!isProblem(r)) return false;
        } else if (r.kind !== kind) return false;
      }
      if (text) {
        if (r._text === undefined) {
          const copy = {};
          for (const [k, v] of Object.entries(r)) if (!k.startsWith('_')) copy[k] = v;
          r._text = JSON.stringify(copy).toLowerCase();
        }
        if (!r._text.includes(text)) return false;
      }
      return true;
    };
    return state.filter;
  }

  let filterTimer = null;
  function filtersChanged() {
    state.filter = null;
    clearTimeout(filterTimer);
    filterTimer = setTimeout(renderAll, 80);
    markSelectedChannel();
  }

  for (const input of filterInputs) {
    input.addEventListener('input', filtersChanged);
    input.addEventListener('change', filtersChanged);
  }

  /** Filters the stream to one channel (from the Channels panel). */
  function filterToChannel(appId, name) {
    const channelInput = $('filter-channel');
    const same = channelInput.value === name;
    channelInput.value = same ? '' : name;
    if (state.apps.length > 1) $('filter-app').value = same ? '' : appId;
    filtersChanged();
    channelInput.classList.remove('flash');
    void channelInput.offsetWidth;
    channelInput.classList.add('flash');
  }

  function filterToSocket(socketId) {
    const input = $('filter-socket');
    input.value = input.value === socketId ? '' : socketId;
    filtersChanged();
    input.classList.remove('flash');
    void input.offsetWidth;
    input.classList.add('flash');
  }

  // ---- rows

  function buildRow(r) {
    const problem = isProblem(r);
    const row = el('div', {
      class: `row k-${r.kind}${problem ? ' problem' : ''}`,
      'data-testid': 'stream-row',
      'data-kind': r.kind,
      'data-channel': r.channel,
      'data-event': r.event,
      'data-socket': r.socket,
      'data-app': r.app,
      'data-source': r.source,
    });
    row._record = r;
    r._el = row;

    if (r.kind === 'missed') {
      row.append(el('div', { class: 'row-main' }, el('span'), el('span', { class: 'c-time' }, fmtTime(r.time)), el('span', { class: 'c-kind' }, el('span', { class: 'badge' }, 'missed')), el('span', { class: 'c-wide', 'data-testid': 'row-summary' }, `⚠ ${plural(r.missed, 'record')} missed here: the page fell behind and the server dropped them rather than wait`)));
      return row;
    }

    const toggle = el('button', { type: 'button', class: 'toggle', 'data-testid': 'row-toggle', title: 'Show the payload and the whole record', 'aria-expanded': 'false' }, '▸');
    const fanout = r.sockets !== undefined && r.sockets !== null;
    const socketCell = fanout
      ? el('span', { class: 'c-sock fan', title: `the same frame to ${plural(r.sockets, 'socket')}` }, `×${r.sockets}`)
      : el('span', { class: 'c-sock', title: r.socket || '' }, r.socket || '');
    const main = el(
      'div',
      { class: 'row-main' },
      toggle,
      el('span', { class: 'c-time', title: r.time || '' }, fmtTime(r.time)),
      el('span', { class: 'c-kind' }, el('span', { class: 'badge' }, KIND_LABEL[r.kind] || r.kind)),
      socketCell,
      el('span', { class: 'c-app' }, r.app === undefined ? '' : String(r.app)),
    );
    if (r.event === undefined && r.channel === undefined) {
      // No event, no channel (connections, API calls, messages): the details get their columns.
      const details = summary(r);
      details.classList.add('span-wide');
      main.append(details);
    } else {
      main.append(
        el('span', { class: 'c-ev', title: r.event || '' }, r.event || ''),
        el('span', { class: 'c-ch', title: r.channel || '' }, r.channel || ''),
        summary(r),
      );
    }
    row.append(main);

    if (r.kind === 'publish' && r.hint) {
      row.append(el('div', { class: 'row-hint', 'data-testid': 'row-hint' }, el('b', null, 'Why nobody got it: '), r.hint));
    }
    if (r.kind === 'signature') row.append(diagnosis(r));

    const open = () => {
      const expanded = row.classList.toggle('open');
      toggle.setAttribute('aria-expanded', String(expanded));
      toggle.textContent = expanded ? '▾' : '▸';
      r._open = expanded;
      let panel = row.querySelector('.payload');
      if (expanded && !panel) {
        panel = payloadPanel(r);
        row.append(panel);
      }
      if (panel) show(panel, expanded);
    };
    main.addEventListener('click', (e) => {
      if (e.target.closest('button') && e.target !== toggle) return;
      const selection = window.getSelection();
      if (selection && String(selection) && e.target !== toggle) return;
      open();
    });
    if (r._open) {
      r._open = false;
      open();
    }
    return row;
  }

  function skippedRow(n) {
    return el(
      'div',
      { class: 'row k-missed', 'data-testid': 'stream-skipped', 'data-count': n },
      el('div', { class: 'row-main' }, el('span'), el('span', { class: 'c-time' }, fmtTime(nowIso())), el('span', { class: 'c-kind' }, el('span', { class: 'badge' }, 'burst')), el('span', { class: 'c-wide' }, `${plural(n, 'record')} arrived too fast to draw here; they are kept: pause, filter or change the order to see them`)),
    );
  }

  function countBadge(n, label) {
    return el('span', { class: `count${n === 0 ? ' zero' : ''}`, 'data-testid': 'row-count', 'data-count': n }, label);
  }

  function dataPreview(r) {
    if (r.data === undefined) return null;
    return el('span', { class: 'c-data' }, compact(r.data));
  }

  function summary(r) {
    const wraps = !['publish', 'frame_in', 'frame_out'].includes(r.kind);
    const s = el('span', { class: `c-sum${wraps ? ' wrap' : ''}`, 'data-testid': 'row-summary' });
    const add = (...parts) => s.append(...parts.filter((p) => p !== null && p !== undefined && p !== ''));
    switch (r.kind) {
      case 'publish': {
        const n = Number(r.delivered);
        add(countBadge(n, `→ ${plural(n, 'socket')}`));
        if (r.source) add(el('span', { class: `tag src-${r.source}` }, r.source));
        add(dataPreview(r));
        break;
      }
      case 'frame_out':
        if (r.sockets !== undefined && r.sockets !== null) add(countBadge(r.sockets, `×${r.sockets} sockets`));
        add(dataPreview(r));
        break;
      case 'frame_in':
        add(dataPreview(r));
        break;
      case 'connect':
        add(`connected${r.remote ? ` from ${r.remote}` : ''}`);
        break;
      case 'disconnect':
        add(el('span', { class: 'code' }, r.code === undefined ? '' : String(r.code)), ` disconnected${r.reason ? `: ${r.reason}` : ''}`);
        break;
      case 'refused':
        add(el('span', { class: 'code' }, r.code === undefined ? '' : String(r.code)), ` connection refused${r.key ? ` for key ${r.key}` : ''}${r.reason ? `: ${r.reason}` : ''}${r.remote ? ` (from ${r.remote})` : ''}`);
        break;
      case 'api':
        add(
          `${r.method || ''} ${r.path || ''} → `,
          el('span', { class: `hs ${r.status >= 400 ? 'bad' : 'good'}` }, String(r.status)),
          r.duration_ms !== undefined ? ` ${r.duration_ms} ms` : '',
          r.reason ? el('span', { class: 'reason' }, ` ${r.reason}`) : '',
        );
        break;
      case 'webhook':
        add(
          `${r.label || 'webhook'} → ${r.url || ''} `,
          el('span', { class: `hs ${r.ok === false ? 'bad' : 'good'}` }, compact(r.result)),
          r.duration_ms !== undefined ? ` in ${r.duration_ms} ms` : '',
          ` (attempt ${r.attempt}${r.next ? `, ${r.next}` : ''})`,
        );
        break;
      case 'signature': {
        const what = r.method ? `${r.method} ${r.path || ''}` : r.subject === 'signin' ? 'a user sign-in' : r.subject === 'channel' ? 'a channel subscription' : r.subject || '';
        add(`signature refused for ${what}`);
        break;
      }
      default:
        add(r.message !== undefined ? compact(r.message) : dataPreview(r) || '');
    }
    return s;
  }

  function diagnosis(r) {
    const box = el('dl', { class: 'diag', 'data-testid': 'row-diagnosis' });
    const item = (label, value, testid, cls) => {
      if (value === undefined || value === null || value === '') return;
      box.append(el('dt', null, label), el('dd', { class: cls, 'data-testid': testid }, value));
    };
    item('likely cause', r.cause, 'diag-cause', 'cause');
    item('should sign', r.expected_string === undefined ? undefined : JSON.stringify(r.expected_string), 'diag-expected-string', 'mono');
    item('received', r.received, 'diag-received', 'mono');
    item('expected', r.expected, 'diag-expected', 'mono');
    item('body md5', r.body_md5, 'diag-body-md5', 'mono');
    if (r.skew_secs !== undefined && r.skew_secs !== null) {
      const skew = Number(r.skew_secs);
      item('clock skew', `${skew >= 0 ? '+' : ''}${skew}s (signer minus server)`, 'diag-skew', 'mono');
    }
    return box;
  }

  function payloadPanel(r) {
    const record = {};
    for (const [k, v] of Object.entries(r)) if (!k.startsWith('_')) record[k] = v;
    const hasData = r.data !== undefined;
    const text = hasData ? pretty(r.data) : JSON.stringify(record, null, 2);
    const label = hasData ? `data${typeof r.data === 'string' ? ' (text)' : ''}${r.bytes !== undefined ? ` · ${plural(r.bytes, 'byte')}` : ''}` : 'record';
    const copy = el('button', { type: 'button', class: 'small', 'data-testid': 'row-copy', title: 'Copy to the clipboard' }, 'copy');
    copy.addEventListener('click', (e) => {
      e.stopPropagation();
      copyText(text, copy);
    });
    const panel = el(
      'div',
      { class: 'payload', 'data-testid': 'row-payload' },
      el('div', { class: 'payload-bar' }, el('span', { class: 'muted' }, label), copy),
      el('pre', { class: 'json', 'data-testid': 'row-payload-json' }, typeof r.data === 'string' ? text : highlighted(text)),
    );
    if (hasData) {
      const details = el('details', null, el('summary', null, 'whole record'), el('pre', { class: 'json' }, highlighted(JSON.stringify(record, null, 2))));
      panel.append(details);
    }
    return panel;
  }

  // ---- toolbar buttons

  function updateOrderButton() {
    $('order-toggle').textContent = state.newestFirst ? '↑ newest first' : '↓ newest last';
    list.classList.toggle('newest-last', !state.newestFirst);
  }

  function updatePauseButton() {
    const button = $('pause-toggle');
    button.textContent = state.paused ? `▶ resume${state.pausedCount ? ` (${state.pausedCount} new)` : ''}` : '❚❚ pause';
    button.classList.toggle('active', state.paused);
    show($('paused-banner'), state.paused);
    $('paused-count').textContent = String(state.pausedCount);
  }

  function resume() {
    state.paused = false;
    const pending = state.pending;
    state.pending = [];
    state.pausedCount = 0;
    for (const record of pending) addRecord(record);
    updatePauseButton();
  }

  $('order-toggle').addEventListener('click', () => {
    state.newestFirst = !state.newestFirst;
    storageSet('newestFirst', state.newestFirst);
    updateOrderButton();
    renderAll();
  });
  $('pause-toggle').addEventListener('click', () => {
    if (state.paused) resume();
    else {
      state.paused = true;
      updatePauseButton();
    }
  });
  $('paused-resume').addEventListener('click', resume);
  $('clear-stream').addEventListener('click', () => {
    for (const record of state.records) {
      record._dropped = true;
      record._el = null;
    }
    state.records = [];
    state.queue = [];
    state.pending = [];
    if (state.paused) {
      state.pausedCount = 0;
      updatePauseButton();
    }
    state.missedTotal = 0;
    show($('missed-banner'), false);
    list.textContent = '';
    updateFooter();
  });
  $('missed-dismiss').addEventListener('click', () => show($('missed-banner'), false));

  document.addEventListener('keydown', (e) => {
    if (e.key === '/' && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)) {
      e.preventDefault();
      $('filter-search').focus();
    }
  });

  // ---------------------------------------------------------------------------------------
  // Records that change what the panels show: refresh them soon instead of waiting a poll.

  function sideEffects(r) {
    switch (r.kind) {
      case 'connect':
      case 'disconnect':
        refreshSoon('connections');
        refreshSoon('channels');
        break;
      case 'frame_in':
        if (/^pusher:(subscribe|unsubscribe|signin)$/.test(r.event || '')) {
          refreshSoon('channels');
          refreshSoon('connections');
        }
        break;
      case 'frame_out':
        if (/^pusher_internal:(subscription_succeeded|member_added|member_removed)$/.test(r.event || '') || r.event === 'pusher:signin_success') {
          refreshSoon('channels');
          refreshSoon('connections');
        }
        break;
      case 'webhook':
        refreshSoon('webhooks');
        break;
      case 'publish':
        if (r.source === 'replay') refreshSoon('replays', 300);
        break;
      case 'recorder':
        refreshSoon('fixtures', 300);
        refreshSoon('replays', 300);
        refreshSoon('recordings', 300);
        break;
      default:
    }
  }

  // ---------------------------------------------------------------------------------------
  // Polling

  const pollers = {};

  function poller(name, load, interval) {
    const p = { name, load, interval, timer: null, busy: false, again: false };
    pollers[name] = p;
    return p;
  }

  async function runPoll(p) {
    clearTimeout(p.timer);
    p.timer = null;
    if (p.busy) {
      p.again = true;
      return;
    }
    p.busy = true;
    try {
      if (!document.hidden) await p.load();
    } catch (err) {
      // The panel keeps its last content; the header says when the server is gone.
      if (err.status === undefined && state.streamState === 'live') console.warn(`pusher-local console: ${p.name}: ${err.message}`);
    } finally {
      p.busy = false;
      const next = p.again ? 0 : p.interval();
      p.again = false;
      p.timer = setTimeout(() => runPoll(p), next);
    }
  }

  function refreshSoon(name, delay = 100) {
    const p = pollers[name];
    if (!p) return;
    if (p.busy) {
      p.again = true;
      return;
    }
    clearTimeout(p.timer);
    p.timer = setTimeout(() => runPoll(p), delay);
  }

  // ---------------------------------------------------------------------------------------
  // Tabs

  const tabs = [...document.querySelectorAll('[role="tab"]')];
  function selectTab(name) {
    state.activeTab = name;
    for (const tab of tabs) tab.setAttribute('aria-selected', String(tab.dataset.tab === name));
    for (const panel of document.querySelectorAll('[data-panel]')) show(panel, panel.dataset.panel === name);
    storageSet('tab', name);
    if (name === 'webhooks') refreshSoon('webhooks', 0);
    if (name === 'replay') {
      refreshSoon('fixtures', 0);
      refreshSoon('replays', 0);
      refreshSoon('recordings', 0);
    }
  }
  for (const tab of tabs) tab.addEventListener('click', () => selectTab(tab.dataset.tab));

  function setPill(id, n) {
    $(id).textContent = n ? String(n) : '';
  }

  // ---------------------------------------------------------------------------------------
  // Channels

  let channelsJson = '';
  poller('channels', async () => {
    const answer = await api('GET', '/pusher-local/channels');
    const channels = answer.channels || [];
    const json = JSON.stringify(channels);
    if (json === channelsJson) return;
    channelsJson = json;
    state.channels = channels;
    renderChannels();
    updateChannelSuggestions();
  }, () => POLL_FAST_MS);

  function renderChannels() {
    const holder = $('channels-list');
    holder.textContent = '';
    const channels = state.channels.slice().sort((a, b) => String(a.app_id).localeCompare(String(b.app_id)) || a.name.localeCompare(b.name));
    setPill('tab-channels-count', channels.length);
    show($('channels-empty'), channels.length === 0);
    const multiApp = state.apps.length > 1 || new Set(channels.map((c) => c.app_id)).size > 1;
    let currentApp = null;
    for (const c of channels) {
      if (multiApp && c.app_id !== currentApp) {
        currentApp = c.app_id;
        const app = state.apps.find((a) => String(a.id) === String(c.app_id));
        holder.append(el('h4', { class: 'group' }, `app ${c.app_id}${app ? ` · ${app.key}` : ''}`));
      }
      const name = el('button', { type: 'button', class: 'channel-name', 'data-testid': 'channel-filter', title: 'Filter the stream to this channel (click again to clear)' }, c.name);
      name.addEventListener('click', () => filterToChannel(String(c.app_id), c.name));
      const users = c.type === 'presence' ? el('span', { 'data-testid': 'channel-users', class: 'muted' }, ` · ${plural(c.user_count || 0, 'user')}`) : null;
      const card = el(
        'div',
        { class: 'channel', 'data-testid': 'channel-row', 'data-channel': c.name, 'data-app': c.app_id, 'data-type': c.type },
        el(
          'div',
          { class: 'channel-head' },
          name,
          el('span', { class: `type t-${c.type}` }, c.type),
          c.cache ? el('span', { class: 'type t-cache' }, 'cache') : null,
          el('span', { class: 'spacer' }),
          el('span', { 'data-testid': 'channel-subscribers', 'data-count': c.subscription_count }, plural(c.subscription_count || 0, 'subscriber')),
          users,
        ),
      );
      if (Array.isArray(c.members)) {
        const members = el('ul', { class: 'members', 'data-testid': 'channel-members' });
        for (const m of c.members) {
          members.append(
            el(
              'li',
              { 'data-testid': 'member', 'data-user': m.user_id },
              el('span', { class: 'member-id' }, m.user_id),
              m.user_info === undefined || m.user_info === null ? el('span', { class: 'muted' }, ' (no user_info on this node)') : el('code', { class: 'member-info', 'data-testid': 'member-info' }, compact(m.user_info)),
            ),
          );
        }
        card.append(members);
      }
      holder.append(card);
    }
    markSelectedChannel();
  }

  function markSelectedChannel() {
    const name = $('filter-channel').value.trim();
    for (const card of document.querySelectorAll('[data-testid="channel-row"]')) {
      card.classList.toggle('selected', name !== '' && card.dataset.channel === name);
    }
  }

  function updateChannelSuggestions() {
    const appId = $('send-app').value;
    const names = [...new Set(state.channels.filter((c) => !appId || String(c.app_id) === appId).map((c) => c.name))].sort();
    const datalist = document.getElementById('occupied-channels');
    datalist.textContent = '';
    for (const name of names) datalist.append(el('option', { value: name }));
  }

  // ---------------------------------------------------------------------------------------
  // Connections

  const connectionCards = new Map();
  poller('connections', async () => {
    const answer = await api('GET', '/pusher-local/connections');
    state.connections = answer.connections || [];
    renderConnections();
  }, () => POLL_FAST_MS);

  function fmtAge(ms) {
    if (ms === undefined || ms === null) return '';
    const s = Math.floor(ms / 1000);
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${s % 60}s`;
    return `${Math.floor(m / 60)}h ${m % 60}m`;
  }

  function shortAgent(agent) {
    if (!agent) return '';
    const browsers = [/(Firefox)\/([\d.]+)/, /(Edg)\/([\d.]+)/, /(HeadlessChrome)\/([\d.]+)/, /(Chrome)\/([\d.]+)/, /Version\/([\d.]+).*(Safari)/, /(node)[-/ ]?([\d.]*)/i];
    for (const re of browsers) {
      const m = re.exec(agent);
      if (m) return re.source.startsWith('Version') ? `${m[2]} ${m[1].split('.')[0]}` : `${m[1]} ${m[2].split('.')[0]}`.trim();
    }
    return agent.length > 28 ? `${agent.slice(0, 27)}…` : agent;
  }

  function renderConnections() {
    const holder = $('connections-list');
    const seen = new Set();
    const connections = state.connections.slice().sort((a, b) => (a.connected_at_ms || 0) - (b.connected_at_ms || 0));
    setPill('tab-connections-count', connections.length);
    show($('connections-empty'), connections.length === 0);
    let previous = null;
    for (const c of connections) {
      seen.add(c.socket_id);
      let card = connectionCards.get(c.socket_id);
      if (!card) {
        card = connectionCard(c);
        connectionCards.set(c.socket_id, card);
      }
      updateConnectionCard(card, c);
      const wanted = previous ? previous.nextSibling : holder.firstChild;
      if (wanted !== card) holder.insertBefore(card, wanted);
      previous = card;
    }
    for (const [id, card] of connectionCards) {
      if (!seen.has(id)) {
        card.remove();
        connectionCards.delete(id);
      }
    }
    const datalist = document.getElementById('socket-ids');
    datalist.textContent = '';
    for (const c of connections) datalist.append(el('option', { value: c.socket_id }, `${c.user_id ? `${c.user_id} · ` : ''}${(c.channels || []).join(', ')}`));
  }

  function connectionCard(c) {
    const socket = el('button', { type: 'button', class: 'socket-id', 'data-testid': 'connection-socket', title: 'Filter the stream to this socket (click again to clear)' }, c.socket_id);
    socket.addEventListener('click', () => filterToSocket(c.socket_id));
    const button = el('button', { type: 'button', class: 'danger small', 'data-testid': 'disconnect-button', title: 'Close this socket with the code chosen above' }, 'Disconnect');
    button.addEventListener('click', () => disconnect(c, button));
    const field = (testid) => el('span', { 'data-testid': testid });
    const card = el(
      'div',
      { class: 'conn', 'data-testid': 'connection-row', 'data-socket': c.socket_id, 'data-app': c.app_id },
      el('div', { class: 'conn-head' }, socket, field('connection-transport'), el('span', { class: 'muted' }, 'app '), field('connection-app'), el('span', { class: 'spacer' }), field('connection-age'), button),
      el('div', { class: 'conn-line muted' }, field('connection-remote'), field('connection-agent'), field('connection-frames')),
      el('div', { class: 'conn-line' }, field('connection-user'), field('connection-channels')),
    );
    card._fields = {};
    for (const node of card.querySelectorAll('[data-testid^="connection-"]')) card._fields[node.dataset.testid.slice('connection-'.length)] = node;
    return card;
  }

  function setText(node, text, title) {
    if (node.textContent !== text) node.textContent = text;
    if (title !== undefined && node.title !== title) node.title = title;
  }

  function updateConnectionCard(card, c) {
    const f = card._fields;
    setText(f.transport, c.transport || '?');
    f.transport.className = `tag tr-${c.transport || 'unknown'}`;
    setText(f.app, String(c.app_id));
    setText(f.age, fmtAge(c.age_ms), c.connected_at_ms ? `connected at ${fmtClock(c.connected_at_ms)}` : '');
    setText(f.remote, c.remote_addr || '', 'remote address');
    setText(f.agent, c.user_agent ? ` · ${shortAgent(c.user_agent)}` : '', c.user_agent || '');
    setText(f.frames, ` · frames in ${c.frames_in ?? '?'} / out ${c.frames_out ?? '?'}`, 'frames received from / sent to this socket');
    setText(f.user, c.user_id ? `user ${c.user_id}` : 'not signed in');
    f.user.className = c.user_id ? 'user' : 'muted';
    const channels = c.channels || [];
    setText(f.channels, channels.length ? ` · ${channels.join(', ')}` : ' · no channels', channels.join('\n'));
  }

  async function disconnect(c, button) {
    const code = Number($('disconnect-code').value);
    const reason = $('disconnect-reason').value.trim() || 'closed from the pusher-local console';
    const result = $('disconnect-result');
    button.disabled = true;
    try {
      const answer = await api('POST', '/pusher-local/disconnect', { app_id: String(c.app_id), socket_id: c.socket_id, code, reason });
      result.className = 'result ok';
      result.textContent = answer.closed ? `Closed ${c.socket_id} with ${code}.` : `${c.socket_id} was already gone.`;
    } catch (err) {
      result.className = 'result bad';
      result.textContent = `Could not close ${c.socket_id}: ${err.message}`;
    } finally {
      button.disabled = false;
      show(result, true);
      refreshSoon('connections', 150);
      refreshSoon('channels', 150);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Event creator

  const sendForm = $('send-form');
  const chips = $('send-channels');
  const channelInput = $('send-channel-input');
  const dataArea = $('send-data');
  let dataVerdict = { ok: true };

  function renderChips() {
    for (const chip of chips.querySelectorAll('.chip')) chip.remove();
    for (const name of state.sendChannels) {
      const remove = el('button', { type: 'button', class: 'chip-x', title: `remove ${name}`, 'aria-label': `remove ${name}` }, '×');
      remove.addEventListener('click', () => {
        state.sendChannels = state.sendChannels.filter((n) => n !== name);
        renderChips();
        channelInput.focus();
      });
      chips.insertBefore(el('span', { class: 'chip', 'data-testid': 'send-channel-chip', 'data-channel': name }, name, remove), channelInput);
    }
  }

  function addChannels(text) {
    const names = String(text).split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
    for (const name of names) if (!state.sendChannels.includes(name)) state.sendChannels.push(name);
    if (names.length) renderChips();
    return names.length;
  }

  channelInput.addEventListener('keydown', (e) => {
    if ((e.key === 'Enter' || e.key === ',' || (e.key === 'Tab' && channelInput.value.trim())) && !e.isComposing) {
      if (channelInput.value.trim()) {
        e.preventDefault();
        addChannels(channelInput.value);
        channelInput.value = '';
      } else if (e.key === 'Enter') {
        e.preventDefault();
      }
    } else if (e.key === 'Backspace' && !channelInput.value && state.sendChannels.length) {
      state.sendChannels.pop();
      renderChips();
    }
  });
  channelInput.addEventListener('input', (e) => {
    // A pick from the <datalist> arrives as one input event without a typing inputType.
    if (!e.inputType || e.inputType === 'insertReplacementText') {
      if (document.querySelector(`#occupied-channels option[value="${CSS.escape(channelInput.value)}"]`)) {
        addChannels(channelInput.value);
        channelInput.value = '';
      }
    }
  });
  channelInput.addEventListener('paste', (e) => {
    const text = (e.clipboardData || window.clipboardData).getData('text');
    if (/[\s,]/.test(text.trim())) {
      e.preventDefault();
      addChannels(text);
    }
  });
  chips.addEventListener('click', (e) => {
    if (e.target === chips) channelInput.focus();
  });
  $('send-app').addEventListener('change', updateChannelSuggestions);

  function checkData() {
    dataVerdict = validateJson(dataArea.value);
    const status = $('send-data-status');
    const error = $('send-data-error');
    if (dataVerdict.ok) {
      status.className = 'json-status ok';
      status.textContent = `✓ valid JSON · ${plural(new TextEncoder().encode(dataArea.value).length, 'byte')}`;
      show(error, false);
      error.textContent = '';
      dataArea.classList.remove('invalid');
    } else {
      status.className = 'json-status bad';
      status.textContent = `✗ not valid JSON: line ${dataVerdict.line}, column ${dataVerdict.column}`;
      error.textContent = `Line ${dataVerdict.line}, column ${dataVerdict.column} (character ${dataVerdict.pos + 1}): ${dataVerdict.message}\n${dataVerdict.excerpt}`;
      show(error, true);
      dataArea.classList.add('invalid');
    }
    $('send-button').disabled = !dataVerdict.ok;
    return dataVerdict;
  }
  let dataTimer = null;
  dataArea.addEventListener('input', () => {
    clearTimeout(dataTimer);
    dataTimer = setTimeout(checkData, 60);
  });
  $('send-data-error').addEventListener('click', () => {
    if (dataVerdict.ok) return;
    dataArea.focus();
    dataArea.setSelectionRange(dataVerdict.pos, Math.min(dataVerdict.pos + 1, dataArea.value.length));
  });
  dataArea.addEventListener('keydown', (e) => {
    if (e.key === 'Tab' && !e.shiftKey) {
      e.preventDefault();
      dataArea.setRangeText('  ', dataArea.selectionStart, dataArea.selectionEnd, 'end');
      dataArea.dispatchEvent(new Event('input'));
    }
  });
  sendForm.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      trySend();
    }
  });

  function sendResult(kind, content) {
    const result = $('send-result');
    result.className = `result ${kind}`;
    result.textContent = '';
    result.append(...[].concat(content));
    show(result, true);
  }

  sendForm.addEventListener('submit', (e) => {
    e.preventDefault();
    trySend();
  });

  async function trySend() {
    clearTimeout(dataTimer);
    const verdict = checkData();
    if (channelInput.value.trim()) {
      addChannels(channelInput.value);
      channelInput.value = '';
    }
    const event = $('send-event').value.trim();
    if (!verdict.ok) {
      sendResult('bad', `Not sent: the data is not valid JSON (line ${verdict.line}, column ${verdict.column}).`);
      dataArea.focus();
      dataArea.setSelectionRange(verdict.pos, Math.min(verdict.pos + 1, dataArea.value.length));
      return;
    }
    if (!state.sendChannels.length) {
      sendResult('bad', 'Not sent: add at least one channel.');
      channelInput.focus();
      return;
    }
    if (!event) {
      sendResult('bad', 'Not sent: the event needs a name.');
      $('send-event').focus();
      return;
    }
    const request = { channels: state.sendChannels.slice(), event, data: dataArea.value };
    const appId = $('send-app').value;
    if (appId) request.app_id = appId;
    const socketId = $('send-socket').value.trim();
    if (socketId) request.socket_id = socketId;
    await publish(request, $('send-button'));
  }

  async function publish(request, button) {
    if (button) button.disabled = true;
    const entry = { time: Date.now(), request, result: null, error: null };
    try {
      const answer = await api('POST', '/pusher-local/publish', request);
      entry.result = answer.channels || {};
      const parts = [el('span', null, `Sent ${request.event} to `)];
      const channels = Object.keys(entry.result).length ? Object.keys(entry.result) : request.channels;
      channels.forEach((name, i) => {
        const n = entry.result[name];
        if (i) parts.push(', ');
        parts.push(el('span', { class: `delivered${n === 0 ? ' zero' : ''}`, 'data-testid': 'send-result-channel', 'data-channel': name, 'data-delivered': n }, `${name} → ${n === undefined ? '?' : plural(n, 'socket')}`));
      });
      if (channels.some((name) => entry.result[name] === 0)) parts.push(el('span', { class: 'muted' }, '. Nobody got it on a channel with 0: the stream row says why.'));
      sendResult('ok', parts);
    } catch (err) {
      entry.error = err.message;
      sendResult('bad', `Not sent: ${err.message}`);
    } finally {
      if (button) button.disabled = button === $('send-button') ? !dataVerdict.ok : false;
    }
    rememberSend(entry);
    return entry;
  }

  function rememberSend(entry) {
    const key = JSON.stringify(entry.request);
    state.recentSends = [entry, ...state.recentSends.filter((s) => JSON.stringify(s.request) !== key)].slice(0, MAX_RECENT_SENDS);
    storageSet('recentSends', state.recentSends);
    renderRecentSends();
  }

  function renderRecentSends() {
    const holder = $('recent-sends');
    holder.textContent = '';
    show($('recent-empty'), state.recentSends.length === 0);
    for (const entry of state.recentSends) {
      const r = entry.request;
      const again = el('button', { type: 'button', class: 'small', 'data-testid': 'send-again', title: 'Send exactly this again' }, 'send again');
      again.addEventListener('click', () => publish(r, again));
      const edit = el('button', { type: 'button', class: 'small ghost', 'data-testid': 'send-edit', title: 'Put it in the form above' }, 'edit');
      edit.addEventListener('click', () => {
        if (r.app_id) $('send-app').value = r.app_id;
        state.sendChannels = r.channels.slice();
        renderChips();
        $('send-event').value = r.event;
        dataArea.value = r.data;
        $('send-socket').value = r.socket_id || '';
        checkData();
        dataArea.focus();
      });
      const outcome = entry.error
        ? el('span', { class: 'bad' }, entry.error)
        : el('span', { class: 'muted' }, Object.entries(entry.result || {}).map(([name, n]) => `${name} → ${n}`).join(', '));
      holder.append(
        el(
          'li',
          { 'data-testid': 'recent-send' },
          el('div', { class: 'recent-head' }, el('span', { class: 'muted' }, fmtClock(entry.time)), el('b', null, r.event), el('span', null, ` → ${r.channels.join(', ')}`), r.socket_id ? el('span', { class: 'muted' }, ` (not ${r.socket_id})`) : null, el('span', { class: 'spacer' }), edit, again),
          el('div', { class: 'recent-data' }, r.data.replace(/\s+/g, ' ').slice(0, 160)),
          el('div', { class: 'recent-outcome' }, outcome),
        ),
      );
    }
  }

  // ---------------------------------------------------------------------------------------
  // Webhooks

  let webhooksJson = '';
  poller('webhooks', async () => {
    const answer = await api('GET', '/pusher-local/webhooks');
    const webhooks = answer.webhooks || [];
    const json = JSON.stringify(webhooks);
    if (json === webhooksJson) return;
    webhooksJson = json;
    state.webhooks = webhooks;
    if ($('webhooks-list').contains(document.activeElement)) webhooksDeferred = true;
    else renderWebhooks();
  }, () => (state.activeTab === 'webhooks' ? POLL_FAST_MS : POLL_SLOW_MS));

  // Not rebuilt under the user's typing: once the focus leaves the list.
  let webhooksDeferred = false;
  $('webhooks-list').addEventListener('focusout', () => {
    setTimeout(() => {
      if (webhooksDeferred && !$('webhooks-list').contains(document.activeElement)) {
        webhooksDeferred = false;
        renderWebhooks();
      }
    }, 0);
  });

  function webhookLabel(w) {
    const events = w.events || [];
    if (events.length === 1) {
      const e = events[0];
      return [e.name, e.channel, e.event, e.user_id ? `user ${e.user_id}` : null].filter(Boolean).join(' ');
    }
    return plural(events.length, 'event');
  }

  function webhookOutcome(w) {
    const deliveries = w.deliveries || [];
    if (!deliveries.length) return { text: 'kept (no webhook URL)', cls: 'muted' };
    const states = deliveries.map((d) => {
      const last = (d.attempts || [])[d.attempts.length - 1];
      const detail = last ? (last.status ? `HTTP ${last.status}` : last.error || '') : '';
      return `${d.state}${detail ? ` (${detail})` : ''}`;
    });
    const bad = deliveries.some((d) => /failed|abandoned|dropped/.test(d.state));
    const good = deliveries.every((d) => d.state === 'delivered');
    return { text: states.join('; '), cls: bad ? 'bad' : good ? 'good' : 'pending' };
  }

  function renderWebhooks() {
    const holder = $('webhooks-list');
    holder.textContent = '';
    const webhooks = state.webhooks.slice().reverse();
    setPill('tab-webhooks-count', webhooks.length);
    show($('webhooks-empty'), webhooks.length === 0);
    for (const w of webhooks) {
      const outcome = webhookOutcome(w);
      const card = el('div', { class: 'webhook', 'data-testid': 'webhook-row', 'data-id': w.id });
      const head = el(
        'div',
        { class: 'webhook-head' },
        el('span', { class: 'toggle-mark' }, state.openWebhooks.has(w.id) ? '▾' : '▸'),
        el('span', { class: 'muted' }, `#${w.id}`),
        el('span', { class: 'muted' }, fmtClock(w.time_ms)),
        el('span', { class: 'webhook-label' }, webhookLabel(w)),
        el('span', { class: 'spacer' }),
        el('span', { class: `outcome ${outcome.cls}`, 'data-testid': 'webhook-outcome' }, outcome.text),
      );
      head.addEventListener('click', () => {
        if (state.openWebhooks.has(w.id)) state.openWebhooks.delete(w.id);
        else state.openWebhooks.add(w.id);
        renderWebhooks();
      });
      card.append(head);
      if (state.openWebhooks.has(w.id)) card.append(webhookDetails(w));
      holder.append(card);
    }
  }

  function webhookDetails(w) {
    const box = el('div', { class: 'webhook-body', 'data-testid': 'webhook-details' });
    const headers = el('table', { class: 'kv' });
    for (const [name, value] of Object.entries(w.headers || {})) headers.append(el('tr', null, el('th', null, name), el('td', { class: 'mono' }, compact(value))));
    let body = w.body || '';
    try {
      body = JSON.stringify(JSON.parse(body), null, 2);
    } catch (_) {
      /* shown as sent */
    }
    const copy = el('button', { type: 'button', class: 'small' }, 'copy body');
    copy.addEventListener('click', () => copyText(w.body || '', copy));
    box.append(el('div', { class: 'payload-bar' }, el('span', { class: 'muted' }, 'headers'), copy), headers, el('div', { class: 'muted sub' }, 'body (as sent, formatted here)'), el('pre', { class: 'json' }, highlighted(body)));
    const deliveries = w.deliveries || [];
    if (!deliveries.length) box.append(el('div', { class: 'muted sub' }, 'Not sent: the app has no webhook URL. Resend it to a URL below.'));
    for (const d of deliveries) {
      const attempts = el('ul', { class: 'attempts' });
      for (const a of d.attempts || []) {
        attempts.append(el('li', null, `attempt ${a.attempt} at ${fmtClock(a.at_ms) || '?'}: `, el('span', { class: a.status && a.status < 300 ? 'good' : 'bad' }, a.status ? `HTTP ${a.status}` : a.error || '?'), ` in ${a.elapsed_ms} ms`));
      }
      box.append(el('div', { class: 'sub' }, el('b', null, d.state), ` → ${d.url}`), attempts);
    }
    const url = el('input', { 'data-testid': 'webhook-resend-url', placeholder: deliveries.length ? 'to its URL(s), or another http:// URL' : 'http://127.0.0.1:8000/pusher/webhook', spellcheck: 'false' });
    url.value = state.resendUrls.get(w.id) || '';
    url.addEventListener('input', () => state.resendUrls.set(w.id, url.value));
    const resend = el('button', { type: 'button', class: 'primary small', 'data-testid': 'webhook-resend' }, 'Resend');
    const last = state.resendResults.get(w.id);
    const result = el('span', { class: last ? last.cls : 'muted', 'data-testid': 'webhook-resend-result' }, last ? last.text : '');
    resend.addEventListener('click', async (e) => {
      e.stopPropagation();
      resend.disabled = true;
      let outcome;
      try {
        const body = url.value.trim() ? { url: url.value.trim() } : {};
        const answer = await api('POST', `/pusher-local/webhooks/${encodeURIComponent(w.id)}/resend`, body);
        outcome = { cls: 'good', text: `queued to ${(answer.urls || []).join(', ')}` };
        refreshSoon('webhooks', 500);
      } catch (err) {
        outcome = { cls: 'bad', text: err.message };
      } finally {
        resend.disabled = false;
      }
      state.resendResults.set(w.id, outcome);
      result.className = outcome.cls;
      result.textContent = outcome.text;
    });
    box.append(el('div', { class: 'form-row compact' }, url, resend), result);
    return box;
  }

  // ---------------------------------------------------------------------------------------
  // Replays and fixtures

  let fixturesJson = '';
  poller('fixtures', async () => {
    const answer = await api('GET', '/pusher-local/fixtures');
    const json = JSON.stringify(answer);
    if (json === fixturesJson) return;
    fixturesJson = json;
    state.fixtures = answer;
    renderFixtures();
  }, () => (state.activeTab === 'replay' ? POLL_SLOW_MS : 15000));

  function renderFixtures() {
    const answer = state.fixtures || { fixtures: [] };
    const fixtures = (answer.fixtures || []).slice().sort((a, b) => a.name.localeCompare(b.name));
    $('fixtures-dir').textContent = answer.dir ? `folder ${answer.dir}` : '';
    const select = $('replay-fixture');
    const previous = select.value;
    select.textContent = '';
    for (const f of fixtures) {
      if (f.error && !f.events) continue;
      select.append(el('option', { value: f.name }, `${f.name} (${plural(f.events || 0, 'event')}${f.duration_ms ? `, ${fmtDuration(f.duration_ms)}` : ''})`));
    }
    if ([...select.options].some((o) => o.value === previous)) select.value = previous;
    const body = $('fixtures-list');
    body.textContent = '';
    for (const f of fixtures) {
      const play = el('button', { type: 'button', class: 'small', 'data-testid': 'fixture-replay', title: 'Replay it with the settings above' }, 'replay ▸');
      play.addEventListener('click', () => {
        select.value = f.name;
        $('replay-form').requestSubmit();
      });
      body.append(
        el(
          'tr',
          { 'data-testid': 'fixture-row', 'data-name': f.name },
          el('td', null, el('b', null, f.name), f.error ? el('div', { class: 'bad small-text', 'data-testid': 'fixture-error' }, f.error) : null),
          el('td', { class: 'num' }, String(f.events ?? '')),
          el('td', { class: 'num' }, fmtDuration(f.duration_ms)),
          // The folder is in the heading: the file's own name is enough here (the path in its title).
          el('td', { class: 'muted small-text', title: f.file || '' }, f.built_in ? 'built in' : (f.file || '').split(/[\\/]/).pop()),
          el('td', null, f.error && !f.events ? null : play),
        ),
      );
    }
  }

  const replayCards = new Map();
  poller('replays', async () => {
    const answer = await api('GET', '/pusher-local/replays');
    const replays = answer.replays || [];
    const now = new Set(replays.map((r) => r.id));
    for (const old of state.replays) {
      if (!now.has(old.id)) {
        const stopped = state.stoppedReplays.has(old.id);
        state.finishedReplays.unshift({ ...old, ended: stopped ? 'stopped' : 'finished', sent: stopped ? old.sent : old.total });
      }
    }
    state.finishedReplays = state.finishedReplays.slice(0, 5);
    state.replays = replays;
    renderReplays();
  }, () => (state.replays.length || state.activeTab === 'replay' ? 500 : POLL_SLOW_MS));

  function renderReplays() {
    const holder = $('replays-list');
    const all = [...state.replays, ...state.finishedReplays];
    setPill('tab-replay-count', state.replays.length);
    show($('replays-empty'), all.length === 0);
    show($('replay-stop-all'), state.replays.length > 1);
    const seen = new Set();
    let previous = null;
    for (const r of all) {
      const key = `${r.id}:${r.ended || 'running'}`;
      seen.add(key);
      let card = replayCards.get(key);
      if (!card) {
        card = replayCard(r);
        replayCards.set(key, card);
      }
      updateReplayCard(card, r);
      const wanted = previous ? previous.nextSibling : holder.firstChild;
      if (wanted !== card) holder.insertBefore(card, wanted);
      previous = card;
    }
    for (const [key, card] of replayCards) {
      if (!seen.has(key)) {
        card.remove();
        replayCards.delete(key);
      }
    }
  }

  function replayCard(r) {
    const stop = el('button', { type: 'button', class: 'danger small', 'data-testid': 'replay-stop' }, 'Stop');
    stop.addEventListener('click', async () => {
      stop.disabled = true;
      state.stoppedReplays.add(r.id);
      try {
        await api('DELETE', `/pusher-local/replays/${encodeURIComponent(r.id)}`);
      } catch (err) {
        replayMessage('bad', `Could not stop replay #${r.id}: ${err.message}`);
      }
      refreshSoon('replays', 0);
    });
    const card = el(
      'div',
      { class: `replay${r.ended ? ' ended' : ''}`, 'data-testid': 'replay-row', 'data-id': r.id, 'data-fixture': r.fixture, 'data-state': r.ended || 'running' },
      el('div', { class: 'replay-head' }, el('b', null, r.fixture), el('span', { class: 'muted' }, ` #${r.id} · app ${r.app_id}`), el('span', { class: 'spacer' }), el('span', { 'data-testid': 'replay-state' }), r.ended ? null : stop),
      el('div', { class: 'bar' }, el('div', { class: 'bar-fill', 'data-testid': 'replay-bar' })),
      el('div', { class: 'muted small-text', 'data-testid': 'replay-progress' }),
    );
    return card;
  }

  function updateReplayCard(card, r) {
    const total = r.total || 0;
    const sent = r.sent || 0;
    const share = total ? Math.min(100, (sent / total) * 100) : 0;
    card.querySelector('.bar-fill').style.width = `${share.toFixed(1)}%`;
    const parts = [`${sent} / ${total} events`];
    if (r.loop || r.passes > 1) parts.push(`pass ${r.passes || 1}`);
    if (!r.ended && r.remaining_ms !== undefined && r.remaining_ms !== null) parts.push(`${fmtDuration(r.remaining_ms)} left`);
    parts.push(`speed ${fmtSpeed(r.speed)}`);
    if (r.loop) parts.push('looping');
    setText(card.querySelector('[data-testid="replay-progress"]'), parts.join(' · '));
    setText(card.querySelector('[data-testid="replay-state"]'), r.ended || 'running');
    card.querySelector('[data-testid="replay-progress"]').dataset.sent = String(sent);
  }

  function fmtSpeed(speed) {
    if (speed === undefined || speed === null) return '1×';
    const m = /^(\d+(?:\.\d+)?)\s*x?$/.exec(String(speed));
    return m ? `${m[1]}×` : String(speed);
  }

  function replayMessage(kind, text) {
    const result = $('replay-result');
    result.className = `result ${kind}`;
    result.textContent = text;
    show(result, true);
  }

  function parseChannelMap(text) {
    const map = {};
    for (const part of text.split(/[,\n]+/).map((s) => s.trim()).filter(Boolean)) {
      const m = /^([^=\s→]+)\s*(?:=|->|→)\s*([^=\s→]+)$/.exec(part);
      if (!m) throw new Error(`channel map: "${part}" is not from=to`);
      map[m[1]] = m[2];
    }
    return map;
  }

  $('replay-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const fixture = $('replay-fixture').value;
    if (!fixture) return replayMessage('bad', 'Choose a fixture.');
    const speedText = $('replay-speed').value.trim().toLowerCase().replace(/^([\d.]+)\s*[x×]$/, '$1');
    let speed;
    if (speedText === 'max') speed = 'max';
    else if (speedText) {
      speed = Number(speedText);
      if (!(speed > 0) || !Number.isFinite(speed)) return replayMessage('bad', `speed: "${speedText}" is not a positive number or max`);
    }
    let channelMap;
    try {
      channelMap = parseChannelMap($('replay-map').value);
    } catch (err) {
      return replayMessage('bad', err.message);
    }
    const request = { fixture, loop: $('replay-loop').checked, channel_map: channelMap };
    if (speed !== undefined) request.speed = speed;
    const appId = $('replay-app').value;
    if (appId) request.app_id = appId;
    const button = $('replay-start');
    button.disabled = true;
    try {
      const answer = await api('POST', '/pusher-local/replays', request);
      replayMessage('ok', `Replaying ${answer.fixture || fixture} (${plural(answer.events ?? 0, 'event')}) as #${answer.id}.`);
      storageSet('replay', { speed: $('replay-speed').value, map: $('replay-map').value });
    } catch (err) {
      replayMessage('bad', `Not started: ${err.message}`);
    } finally {
      button.disabled = false;
      refreshSoon('replays', 0);
    }
    return undefined;
  });

  $('replay-stop-all').addEventListener('click', async () => {
    for (const r of state.replays) state.stoppedReplays.add(r.id);
    try {
      await api('DELETE', '/pusher-local/replays');
    } catch (err) {
      replayMessage('bad', `Could not stop: ${err.message}`);
    }
    refreshSoon('replays', 0);
  });

  // ---------------------------------------------------------------------------------------
  // Recording: start and stop, the recordings, export as a fixture

  /** The server's default name for a recording started now, `rec-2026-12-01-18-30-05`. */
  function defaultRecordingName() {
    const d = new Date();
    const pad = (n) => String(n).padStart(2, '0');
    return `rec-${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}-${pad(d.getHours())}-${pad(d.getMinutes())}-${pad(d.getSeconds())}`;
  }

  let recordingsJson = '';
  poller('recordings', async () => {
    const answer = await api('GET', '/pusher-local/recordings');
    const json = JSON.stringify(answer);
    if (json === recordingsJson) return;
    recordingsJson = json;
    state.recordings = answer;
    renderRecordings();
  }, () => (state.recordings && state.recordings.recording ? POLL_FAST_MS : state.activeTab === 'replay' ? POLL_SLOW_MS : 15000));

  function renderRecordings() {
    const answer = state.recordings || { recordings: [] };
    const running = answer.recording || null;
    $('recordings-db').textContent = answer.db ? `database ${answer.db}` : '';
    $('record-start').disabled = Boolean(running);
    $('record-stop').disabled = !running;
    $('record-name').disabled = Boolean(running);
    $('record-name').placeholder = defaultRecordingName();
    const live = $('recording-live');
    const indicator = $('rec-indicator');
    show(live, Boolean(running));
    show(indicator, Boolean(running));
    show($('tab-replay-rec'), Boolean(running));
    if (running) {
      const events = plural(running.events || 0, 'event');
      live.dataset.name = running.name;
      live.dataset.events = String(running.events || 0);
      setText($('recording-live-text'), `recording ${running.name} — ${events}`);
      setText($('rec-indicator-text'), `REC ${running.name} · ${events}`);
    }
    const recordings = (answer.recordings || []).slice().reverse();
    show($('recordings-table'), recordings.length > 0);
    show($('recordings-empty'), recordings.length === 0);
    const body = $('recordings-list');
    body.textContent = '';
    for (const r of recordings) body.append(recordingRow(r));
  }

  function recordingRow(r) {
    const exportButton = el('button', { type: 'button', class: 'small', 'data-testid': 'recording-export', title: r.running ? 'Stop the recording first' : 'Write it into the fixtures folder, to replay it' }, 'Export as fixture');
    exportButton.disabled = Boolean(r.running);
    exportButton.addEventListener('click', () => exportRecording(r.name, exportButton, false));
    const length = r.ended_at_ms ? fmtDuration(r.duration_ms) : r.running ? fmtDuration(r.duration_ms) : `${fmtDuration(r.duration_ms)} (not ended)`;
    return el(
      'tr',
      { class: r.running ? 'running' : '', 'data-testid': 'recording-row', 'data-name': r.name, 'data-events': r.events, 'data-running': String(Boolean(r.running)) },
      el('td', null, el('b', null, r.name), r.running ? el('span', { class: 'recording-state' }, '● recording') : null),
      el('td', { class: 'num', 'data-testid': 'recording-events' }, String(r.events)),
      el('td', { class: 'num' }, length),
      el('td', { class: 'num muted', title: new Date(r.started_at_ms).toString() }, fmtStarted(r.started_at_ms)),
      el('td', { class: 'nowrap' }, exportButton),
    );
  }

  /** Today's times as HH:MM:SS, older ones with their date. */
  function fmtStarted(ms) {
    const d = new Date(ms);
    if (d.toDateString() === new Date().toDateString()) return fmtClock(ms);
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function recordMessage(kind, text, action) {
    const result = $('record-result');
    result.className = `result ${kind}`;
    result.textContent = text;
    if (action) result.append(' ', action);
    show(result, true);
  }

  async function exportRecording(name, button, overwrite) {
    button.disabled = true;
    try {
      const answer = await api('POST', `/pusher-local/recordings/${encodeURIComponent(name)}/export`, overwrite ? { overwrite: true } : {});
      recordMessage('ok', `Exported as ${answer.file} (${plural(answer.events ?? 0, 'event')}): fixture ${answer.fixture}, in the list above.`);
      refreshSoon('fixtures', 0);
    } catch (err) {
      let action = null;
      if (err.status === 409 && /exists already/.test(err.message)) {
        action = el('button', { type: 'button', class: 'small danger', 'data-testid': 'recording-overwrite' }, 'Overwrite it');
        action.addEventListener('click', () => exportRecording(name, action, true));
      }
      recordMessage('bad', `Not exported: ${err.message}`, action);
    } finally {
      button.disabled = false;
    }
  }

  $('record-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $('record-name').value.trim();
    const button = $('record-start');
    button.disabled = true;
    try {
      const answer = await api('POST', '/pusher-local/recording', name ? { name } : {});
      recordMessage('ok', `Recording ${answer.name} into ${answer.db}.`);
      $('record-name').value = '';
    } catch (err) {
      recordMessage('bad', `Not started: ${err.message}`);
      button.disabled = false;
    }
    refreshSoon('recordings', 0);
  });

  $('record-stop').addEventListener('click', async () => {
    const button = $('record-stop');
    button.disabled = true;
    try {
      const answer = await api('DELETE', '/pusher-local/recording');
      recordMessage('ok', `Stopped ${answer.name}: ${plural(answer.events ?? 0, 'event')} saved.`);
    } catch (err) {
      recordMessage('bad', `Not stopped: ${err.message}`);
      button.disabled = false;
    }
    refreshSoon('recordings', 0);
  });

  $('rec-indicator').addEventListener('click', () => {
    selectTab('replay');
    $('recording-live').scrollIntoView({ block: 'nearest' });
  });

  // ---------------------------------------------------------------------------------------
  // Theme

  const themes = ['auto', 'light', 'dark'];
  function applyTheme(theme) {
    if (theme === 'auto') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    $('theme-toggle').textContent = theme === 'auto' ? '◐ auto' : theme === 'light' ? '☀ light' : '☾ dark';
  }
  let theme = storageGet('theme', 'auto');
  if (!themes.includes(theme)) theme = 'auto';
  applyTheme(theme);
  $('theme-toggle').addEventListener('click', () => {
    theme = themes[(themes.indexOf(theme) + 1) % themes.length];
    storageSet('theme', theme);
    applyTheme(theme);
  });

  // ---------------------------------------------------------------------------------------
  // Start

  const savedReplay = storageGet('replay', null);
  if (savedReplay) {
    $('replay-speed').value = savedReplay.speed || '1';
    $('replay-map').value = savedReplay.map || '';
  }
  updateOrderButton();
  updatePauseButton();
  updateFooter();
  checkData();
  renderRecentSends();
  const savedTab = storageGet('tab', 'channels');
  selectTab(tabs.some((t) => t.dataset.tab === savedTab) ? savedTab : 'channels');
  connectStream();
  for (const p of Object.values(pollers)) runPoll(p);

  // For tests and the curious: the page's state, read-only by convention.
  window.pusherLocalConsole = { state, validateJson, onMissed };
})();
