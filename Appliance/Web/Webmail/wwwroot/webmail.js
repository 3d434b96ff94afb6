// Appliance webmail: one page over /webmail/api (docs/webmail.md), no framework, no build step.
//
// Implementation notes
// - Served under a strict CSP (script-src 'self', style-src 'self'): no inline scripts or style
//   attributes, no eval. Server-provided strings reach the page only through textContent,
//   .value or setAttribute on elements made here; innerHTML is never used.
// - The session cookie is HttpOnly; the page keeps the CSRF token from GET/POST
//   /webmail/api/session and sends it as X-CSRF-Token on every non-GET request.
// - A message is shown in <iframe sandbox> (never allow-scripts, never allow-same-origin) whose
//   document the server sanitizes and serves with a policy of its own.
// - Any 401 after signing in ends the session in the page and shows the sign-in form.
// - New mail arrives through an EventSource on /webmail/api/events: folder counts and the open
//   list are refreshed when their folder changes.
// - No confirm()/prompt(): questions are asked in an in-page dialog.
'use strict';

(() => {
  const API = '/webmail/api';
  const I18N = window.WebmailI18n;

  // ---- state ------------------------------------------------------------------------------

  const session = { address: '', displayName: '', csrf: null };
  let settings = { language: 'en', timeZone: '', pageSize: 50, threads: false, remoteImages: 'ask', signature: '' };
  let lang = 'en';
  let events = null;          // the EventSource, while signed in
  let currentView = 'mail';

  const mail = {
    folders: [],
    folder: 'INBOX',
    offset: 0,
    total: 0,
    sort: 'date',
    order: 'desc',
    threads: false,
    q: '',
    messages: [],
    selected: null,           // the uid shown in the reader
    message: null,            // the message view shown in the reader
    listToken: 0,
  };

  // ---- helpers ------------------------------------------------------------------------------

  const $ = (selector, root = document) => root.querySelector(selector);
  const byId = (testid, root = document) => root.querySelector(`[data-testid="${testid}"]`);

  function t(key, ...args) {
    const table = I18N[lang] || I18N.en;
    let text = table[key] ?? I18N.en[key] ?? key;
    args.forEach((a, i) => { text = text.replace(`{${i}}`, String(a)); });
    return text;
  }

  /** el('td', {testid, class, ...attributes}, ...children): children are nodes or text. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'testid') node.dataset.testid = v;
      else if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
    return node;
  }

  function svgIcon(pathData, label) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 16 16');
    svg.setAttribute('class', 'icon');
    svg.setAttribute('aria-label', label);
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', pathData);
    svg.append(path);
    return svg;
  }
  const CLIP = 'M10.5 3.5v7a2.5 2.5 0 0 1-5 0V3a1.5 1.5 0 0 1 3 0v7a.5.5 0 0 1-1 0V4';

  const query = params => {
    const s = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') s.set(k, String(v));
    const text = s.toString();
    return text ? `?${text}` : '';
  };

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} KB`;
    if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
    return `${(bytes / 1024 ** 3).toFixed(1)} GB`;
  }

  function zone() { return settings.timeZone || undefined; }

  function formatDate(iso, long = false) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    const locale = lang === 'es' ? 'es-ES' : 'en-GB';
    try {
      if (long) return d.toLocaleString(locale, { timeZone: zone(), dateStyle: 'full', timeStyle: 'short' });
      const day = x => x.toLocaleDateString(locale, { timeZone: zone() });
      if (day(d) === day(new Date())) return d.toLocaleTimeString(locale, { timeZone: zone(), hour: '2-digit', minute: '2-digit' });
      return d.toLocaleDateString(locale, { timeZone: zone(), day: 'numeric', month: 'short', year: 'numeric' });
    } catch {
      return d.toLocaleString(locale);
    }
  }

  const addressText = a => (a.name ? `${a.name} <${a.address}>` : a.address);
  const addressList = list => (list || []).map(addressText).join(', ');

  function showError(node, error) {
    node.textContent = error ? (error.message || String(error)) : '';
    node.hidden = !error;
  }

  let toastTimer = 0;
  function toast(text) {
    const node = byId('toast');
    node.textContent = text;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { node.hidden = true; }, 4000);
  }

  /** Reports an error that has no place of its own: a toast with the problem's detail. */
  function report(error) {
    if (error && error.signedOut) return;
    toast(error && error.message ? error.message : String(error));
  }

  // ---- API ----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  /**
   * Calls the API; resolves to the parsed JSON (or null), or throws ApiError with the problem's
   * detail. body: an object (sent as JSON), FormData, or {raw, type}. options.login: a 401 is the
   * caller's business (the sign-in form, the session probe).
   */
  async function api(method, path, body, options = {}) {
    const headers = { Accept: 'application/json, application/problem+json' };
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body && body.raw !== undefined) { payload = body.raw; headers['Content-Type'] = body.type; }
    else if (body !== undefined) { payload = JSON.stringify(body); headers['Content-Type'] = 'application/json'; }
    if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
    let response;
    try {
      response = await fetch(API + path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store' });
    } catch {
      throw new ApiError(0, t('networkError'));
    }
    const text = response.status === 204 ? '' : await response.text();
    let data = null;
    if (text && /json/.test(response.headers.get('Content-Type') || '')) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (response.ok) return data;
    const detail = (data && (data.detail || data.title)) || text.trim() || `${method} ${path}: ${response.status}`;
    const error = new ApiError(response.status, detail);
    if (response.status === 401 && !options.login) {
      error.signedOut = true;
      signedOut(t('sessionEnded'));
    }
    throw error;
  }

  // ---- in-page dialog (ask / confirm) ---------------------------------------------------------

  /** Asks a question in the page; resolves to the text entered (or true), or null when cancelled. */
  function ask(text, { input = true, value = '' } = {}) {
    const overlay = byId('dialog-overlay');
    const form = byId('dialog');
    const field = byId('dialog-input');
    byId('dialog-text').textContent = text;
    field.hidden = !input;
    field.value = value;
    overlay.hidden = false;
    (input ? field : byId('dialog-ok')).focus();
    return new Promise(resolve => {
      const done = result => {
        overlay.hidden = true;
        form.removeEventListener('submit', onSubmit);
        byId('dialog-cancel').removeEventListener('click', onCancel);
        overlay.removeEventListener('keydown', onKey);
        resolve(result);
      };
      const onSubmit = e => { e.preventDefault(); done(input ? field.value : true); };
      const onCancel = () => done(null);
      const onKey = e => { if (e.key === 'Escape') { e.stopPropagation(); done(null); } };
      form.addEventListener('submit', onSubmit);
      byId('dialog-cancel').addEventListener('click', onCancel);
      overlay.addEventListener('keydown', onKey);
    });
  }
  const confirmIt = text => ask(text, { input: false });

  // ---- language ---------------------------------------------------------------------------------

  function applyLanguage(code) {
    lang = I18N[code] ? code : 'en';
    document.documentElement.lang = lang;
    document.title = t('appName');
    for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll('[data-i18n-ph]')) node.placeholder = t(node.dataset.i18nPh);
    const rows = t('keys').map(([key, what]) => el('tr', {}, el('td', {}, el('kbd', { text: key })), el('td', { text: what })));
    byId('shortcuts-table').replaceChildren(...rows);
    byId('move-target').options[0] && (byId('move-target').options[0].textContent = t('moveTo'));
    updateComposeMode();
    updateSortOrder();
  }

  const browserLanguage = () => ((navigator.language || 'en').toLowerCase().startsWith('es') ? 'es' : 'en');

  // ---- session ----------------------------------------------------------------------------------

  async function start() {
    applyLanguage(browserLanguage());
    try {
      const info = await api('GET', '/session', undefined, { login: true });
      await signedIn(info);
    } catch (e) {
      if (e.status !== 401) showError(byId('login-error'), e);
      showLogin();
    }
  }

  function showLogin() {
    document.getElementById('app').hidden = true;
    byId('compose-overlay').hidden = true;
    document.getElementById('login').hidden = false;
    byId('login-address').focus();
  }

  async function signIn(e) {
    e.preventDefault();
    const error = byId('login-error');
    error.hidden = true;
    const button = byId('login-submit');
    button.disabled = true;
    try {
      const info = await api('POST', '/session', { address: byId('login-address').value.trim(), password: byId('login-password').value }, { login: true });
      byId('login-password').value = '';
      await signedIn(info);
    } catch (err) {
      showError(error, err);
    } finally {
      button.disabled = false;
    }
  }

  async function signedIn(info) {
    session.address = info.address;
    session.displayName = info.displayName || '';
    session.csrf = info.csrf;
    byId('who').textContent = session.displayName ? `${session.displayName} <${session.address}>` : session.address;
    try {
      settings = { ...settings, ...(await api('GET', '/settings')) };
    } catch (e) {
      if (e.signedOut) return;
    }
    applyLanguage(settings.language || browserLanguage());
    mail.threads = !!settings.threads;
    byId('threads-toggle').checked = mail.threads;
    document.getElementById('login').hidden = true;
    document.getElementById('app').hidden = false;
    openEvents();
    showView('mail');
    await loadFolders();
    await loadMessages();
  }

  function signedOut(message) {
    if (events) { events.close(); events = null; }
    session.csrf = null;
    closeCompose();
    const error = byId('login-error');
    if (message) showError(error, { message });
    showLogin();
  }

  /** Ends the session, then loads the page afresh: nothing of the mailbox stays in memory or in the DOM. */
  async function signOut() {
    try { await api('DELETE', '/session'); } catch { /* signed out anyway */ }
    session.csrf = null;
    window.location.replace('/');
  }

  // ---- new-mail events --------------------------------------------------------------------------

  let folderRefresh = 0;
  function openEvents() {
    if (events || !window.EventSource) return;
    events = new EventSource(`${API}/events`);
    // The browser retries a dropped stream by itself; a refused one (401, 503) it gives up on:
    // then the session is asked about (a 401 there signs the page out) and the stream reopened.
    events.addEventListener('error', () => {
      if (!events || events.readyState !== EventSource.CLOSED) return;
      events = null;
      setTimeout(async () => {
        try {
          await api('GET', '/session');
          if (session.csrf) { openEvents(); loadFolders().catch(report); }
        } catch { /* signed out, or the server is away: the next action says so */ }
      }, 5000);
    });
    events.addEventListener('folder', e => {
      let folder = '';
      try { folder = JSON.parse(e.data).folder; } catch { return; }
      clearTimeout(folderRefresh);
      folderRefresh = setTimeout(() => {
        loadFolders().catch(report);
        if (folder === mail.folder) loadMessages({ keepReader: true }).catch(report);
      }, 150);
    });
  }

  // ---- views ------------------------------------------------------------------------------------

  function showView(name) {
    currentView = name;
    for (const panel of document.querySelectorAll('[data-view-panel]')) panel.hidden = panel.dataset.viewPanel !== name;
    for (const b of document.querySelectorAll('.nav [data-view]')) b.classList.toggle('active', b.dataset.view === name);
    byId('search').hidden = name !== 'mail';
    if (name === 'contacts') loadContacts().catch(report);
    if (name === 'notes') loadNotes().catch(report);
    if (name === 'files') loadFiles(files.folder).catch(report);
    if (name === 'settings') loadSettingsForms().catch(report);
  }

  // ---- folders ----------------------------------------------------------------------------------

  function folderLabel(f) {
    const names = t('folderNames');
    if (f.name === 'INBOX') return names.INBOX;
    if (f.specialUse && names[f.specialUse]) return names[f.specialUse];
    return f.name.split('/').pop();
  }

  async function loadFolders() {
    const data = await api('GET', '/folders');
    mail.folders = data.folders;
    renderFolders();
  }

  function renderFolders() {
    const items = mail.folders.map(f => {
      const depth = f.name.split('/').length - 1;
      const count = el('span', { class: 'count', testid: 'unread-count', text: f.unread > 0 ? String(f.unread) : '' });
      count.hidden = f.unread === 0;
      const li = el('li', {
        testid: 'folder', 'data-folder': f.name, class: `folder${f.name === mail.folder ? ' active' : ''}${f.unread ? ' has-unread' : ''}`,
        tabindex: '0', role: 'button', title: f.name,
        onclick: () => openFolder(f.name),
        onkeydown: e => { if (e.key === 'Enter') openFolder(f.name); },
      }, el('span', { class: 'folder-name', text: folderLabel(f) }), count);
      if (depth) li.classList.add(`depth-${Math.min(depth, 4)}`);
      if (!f.specialUse && f.name !== 'INBOX') {
        li.append(el('button', {
          type: 'button', class: 'folder-delete link small', title: t('delete'), text: '×', testid: 'folder-delete',
          onclick: e => { e.stopPropagation(); deleteFolder(f.name); },
        }));
      }
      return li;
    });
    byId('folder-list').replaceChildren(...items);
    const move = byId('move-target');
    move.replaceChildren(el('option', { value: '', text: t('moveTo') }),
      ...mail.folders.filter(f => f.name !== mail.folder).map(f => el('option', { value: f.name, text: folderLabel(f) })));
  }

  function openFolder(name) {
    mail.folder = name;
    mail.offset = 0;
    mail.q = '';
    byId('search').value = '';
    showView('mail');
    renderFolders();
    closeReader();
    loadMessages().catch(report);
  }

  async function newFolder() {
    const name = await ask(t('folderName'));
    if (!name) return;
    try {
      await api('POST', '/folders', { name });
      await loadFolders();
    } catch (e) { report(e); }
  }

  async function deleteFolder(name) {
    if (!await confirmIt(t('confirmDeleteFolder', name))) return;
    try {
      await api('DELETE', `/folders${query({ folder: name })}`);
      if (mail.folder === name) mail.folder = 'INBOX';
      await loadFolders();
      await loadMessages();
    } catch (e) { report(e); }
  }

  // ---- message list -----------------------------------------------------------------------------

  async function loadMessages({ keepReader = false } = {}) {
    const token = ++mail.listToken;
    const data = await api('GET', `/messages${query({
      folder: mail.folder, offset: mail.offset, limit: settings.pageSize || 50, sort: mail.sort, order: mail.order,
      threads: mail.threads ? 1 : 0, q: mail.q,
    })}`);
    if (token !== mail.listToken) return;   // a newer list was asked for meanwhile
    mail.total = data.total;
    mail.messages = data.messages;
    if (!keepReader && mail.selected && !mail.messages.some(m => m.uid === mail.selected)) closeReader();
    renderMessages();
  }

  function renderMessages() {
    const rows = mail.messages.map(m => {
      const who = isOutgoingFolder() ? (m.to[0] ? (m.to[0].name || m.to[0].address) : '') : (m.from.name || m.from.address);
      const row = el('li', {
        testid: 'message-row', 'data-uid': String(m.uid), tabindex: '-1',
        class: ['message-row', m.seen ? 'seen' : 'unread', m.uid === mail.selected ? 'selected' : '', m.flagged ? 'flagged' : '',
          m.depth ? `depth-${Math.min(m.depth, 6)}` : ''].filter(Boolean).join(' '),
        onclick: () => openMessage(m.uid),
      },
      el('span', { class: 'row-flags' },
        el('button', {
          type: 'button', class: `star${m.flagged ? ' on' : ''}`, testid: 'row-flag', title: m.flagged ? t('unflag') : t('flag'),
          text: m.flagged ? '★' : '☆', onclick: e => { e.stopPropagation(); setFlag(m.uid, !m.flagged); },
        }),
        m.answered ? el('span', { class: 'answered', title: t('reply'), text: '↩' }) : null),
      el('span', { class: 'row-from', testid: 'message-from', text: who, title: m.from.address }),
      el('span', { class: 'row-date', testid: 'message-date', text: formatDate(m.date) }),
      el('span', { class: 'row-subject', testid: 'message-subject', text: m.subject || t('noSubject') }),
      el('span', { class: 'row-meta' },
        m.attachments ? el('span', { class: 'row-att', testid: 'message-attachment', title: t('attachment') }, svgIcon(CLIP, t('attachment'))) : null,
        el('span', { class: 'row-size', text: formatSize(m.size) })));
      return row;
    });
    byId('message-list').replaceChildren(...rows);
    byId('list-empty').hidden = rows.length > 0;
    const size = settings.pageSize || 50;
    byId('page-info').textContent = mail.total === 0 ? t('pageEmpty')
      : t('pageInfo', mail.offset + 1, Math.min(mail.offset + mail.messages.length, mail.total), mail.total);
    byId('page-prev').disabled = mail.offset === 0;
    byId('page-next').disabled = mail.offset + size >= mail.total;
    const note = byId('search-note');
    note.hidden = !mail.q;
    if (mail.q) {
      note.replaceChildren(t('searchResults', mail.q), ' ',
        el('button', { type: 'button', class: 'link small', text: t('clearSearch'), onclick: () => search('') }));
    }
  }

  function isOutgoingFolder() {
    const f = mail.folders.find(x => x.name === mail.folder);
    return !!f && (f.specialUse === '\\Sent' || f.specialUse === '\\Drafts');
  }

  function isDraftsFolder() {
    const f = mail.folders.find(x => x.name === mail.folder);
    return !!f && f.specialUse === '\\Drafts';
  }

  function page(step) {
    const size = settings.pageSize || 50;
    const next = mail.offset + step * size;
    if (next < 0 || next >= mail.total) return;
    mail.offset = next;
    loadMessages().catch(report);
  }

  function search(text) {
    mail.q = text.trim();
    byId('search').value = mail.q;
    mail.offset = 0;
    showView('mail');
    loadMessages().catch(report);
  }

  function updateSortOrder() {
    const b = byId('sort-order');
    if (b) {
      b.textContent = mail.order === 'desc' ? '↓' : '↑';
      b.title = mail.order === 'desc' ? 'descending' : 'ascending';
    }
  }

  // ---- reader -----------------------------------------------------------------------------------

  function closeReader() {
    mail.selected = null;
    mail.message = null;
    $('.reader-message').hidden = true;
    $('.reader-empty').hidden = false;
    byId('reader-frame').removeAttribute('src');
  }

  const msgQuery = (extra = {}) => query({ folder: mail.message.folder, uid: mail.message.uid, ...extra });

  async function openMessage(uid) {
    const row = mail.messages.find(m => m.uid === uid);
    if (row && row.draft && isDraftsFolder()) {
      openCompose('draft', { folder: mail.folder, uid }).catch(report);
      return;
    }
    mail.selected = uid;
    for (const r of document.querySelectorAll('[data-testid=message-row]')) r.classList.toggle('selected', r.dataset.uid === String(uid));
    let m;
    try {
      m = await api('GET', `/message${query({ folder: mail.folder, uid })}`);
    } catch (e) {
      report(e);
      if (!e.signedOut) loadMessages().catch(report);
      return;
    }
    if (mail.selected !== uid) return;
    mail.message = m;
    renderReader(m);
    if (row && !row.seen) {
      row.seen = true;
      const node = $(`[data-testid=message-row][data-uid="${uid}"]`);
      if (node) { node.classList.remove('unread'); node.classList.add('seen'); }
      loadFolders().catch(report);
    }
  }

  function renderReader(m) {
    $('.reader-empty').hidden = true;
    $('.reader-message').hidden = false;
    byId('reader-subject').textContent = m.subject || t('noSubject');
    byId('reader-from').textContent = addressList(m.from);
    byId('reader-to').textContent = addressList(m.to);
    byId('reader-cc').textContent = addressList(m.cc);
    for (const n of document.querySelectorAll('.reader-head .cc')) n.hidden = !(m.cc && m.cc.length);
    byId('reader-date').textContent = formatDate(m.date, true);
    byId('flag').textContent = m.flagged ? t('unflag') : t('flag');
    byId('junk').textContent = m.junk ? t('notJunk') : t('junk');
    byId('view-source').href = `${API}/message/raw${msgQuery()}`;
    byId('view-source').setAttribute('download', `message-${m.uid}.eml`);
    const always = settings.remoteImages === 'always';
    byId('remote-images-bar').hidden = !m.remoteImages || always;
    showBody(m.remoteImages && always);
    renderAttachments(m);
  }

  function showBody(remote) {
    byId('reader-frame').src = `${API}/message/body${msgQuery({ remote: remote ? 1 : 0 })}`;
  }

  const INLINE = /^(image\/(png|jpeg|gif|webp)|application\/pdf|text\/plain)$/;

  function renderAttachments(m) {
    const items = m.attachments.map(a => {
      const url = extra => `${API}/message/part${msgQuery({ part: a.part, ...extra })}`;
      const preview = /^image\/(png|jpeg|gif|webp)$/.test(a.type)
        ? el('img', { class: 'thumb', src: url({ download: 0 }), alt: a.name }) : null;
      return el('li', { class: 'attachment', testid: 'attachment' },
        preview,
        el('span', { class: 'att-name', text: a.name }),
        el('span', { class: 'muted', text: formatSize(a.size) }),
        INLINE.test(a.type) ? el('a', { href: url({ download: 0 }), target: '_blank', rel: 'noopener', text: t('open') }) : null,
        el('a', { href: url({ download: 1 }), download: a.name, text: t('download') }));
    });
    byId('attachments').replaceChildren(...items);
    byId('attachments').hidden = items.length === 0;
  }

  function moveSelection(step) {
    if (!mail.messages.length) return;
    const i = mail.messages.findIndex(m => m.uid === mail.selected);
    const next = i < 0 ? 0 : i + step;
    if (next < 0 || next >= mail.messages.length) return;
    openMessage(mail.messages[next].uid);
    const node = $(`[data-testid=message-row][data-uid="${mail.messages[next].uid}"]`);
    if (node) node.scrollIntoView({ block: 'nearest' });
  }

  /** After the shown message left the folder: show the next one, if any. */
  async function afterRemoval(uid) {
    const i = mail.messages.findIndex(m => m.uid === uid);
    const next = mail.messages[i + 1] || mail.messages[i - 1];
    closeReader();
    await loadMessages();
    await loadFolders();
    if (next && mail.messages.some(m => m.uid === next.uid)) openMessage(next.uid);
  }

  async function change(path, extra) {
    if (!mail.message) return;
    const uid = mail.message.uid;
    try {
      await api('POST', path, { folder: mail.message.folder, uids: [uid], ...extra });
      await afterRemoval(uid);
    } catch (e) { report(e); }
  }

  const deleteMessage = () => change('/messages/delete', {});
  const junkMessage = () => mail.message && change('/messages/junk', { junk: !mail.message.junk });

  async function moveMessage(target) {
    if (!target) return;
    await change('/messages/move', { target });
    toast(t('moved', target));
  }

  async function setFlag(uid, flagged) {
    try {
      await api('POST', '/messages/flags', { folder: mail.folder, uids: [uid], flagged });
      if (mail.message && mail.message.uid === uid) {
        mail.message.flagged = flagged;
        byId('flag').textContent = flagged ? t('unflag') : t('flag');
      }
      await loadMessages({ keepReader: true });
    } catch (e) { report(e); }
  }

  async function markUnread() {
    if (!mail.message) return;
    try {
      await api('POST', '/messages/flags', { folder: mail.message.folder, uids: [mail.message.uid], seen: false });
      closeReader();
      await loadMessages();
      await loadFolders();
    } catch (e) { report(e); }
  }

  // ---- compose ----------------------------------------------------------------------------------

  const compose = { open: false, html: false, inReplyTo: null, draft: null, attachments: [], busy: false };

  function signatureBlock() {
    return settings.signature ? `\n\n-- \n${settings.signature}` : '';
  }

  /** Opens the compose panel: mode is new, reply, all, forward or draft; prefill {to, subject, text}. */
  async function openCompose(mode = 'new', ref = null, prefill = {}) {
    let draft = { to: '', cc: '', bcc: '', subject: '', text: '', attachments: [], inReplyTo: null, draft: null, ...prefill };
    if (mode !== 'new' && ref) {
      draft = await api('GET', `/message/reply${query({ folder: ref.folder, uid: ref.uid, mode })}`);
    }
    resetCompose();
    compose.inReplyTo = draft.inReplyTo || null;
    compose.draft = draft.draft || null;
    compose.attachments = (draft.attachments || []).slice();
    byId('compose-to').value = draft.to || '';
    byId('compose-cc').value = draft.cc || '';
    byId('compose-bcc').value = draft.bcc || '';
    byId('compose-subject').value = draft.subject || '';
    let body = draft.text || '';
    if (mode === 'new') body += signatureBlock();
    else if (mode !== 'draft') body = `${signatureBlock() || '\n\n'}\n\n${body}`.replace(/^\n\n\n\n/, '\n\n');
    byId('compose-body').value = body;
    byId('compose-title').textContent = draft.subject || t('newMessage');
    renderChips();
    byId('compose-overlay').hidden = false;
    compose.open = true;
    const focus = byId('compose-to').value ? (mode === 'forward' ? byId('compose-to') : byId('compose-body')) : byId('compose-to');
    focus.focus();
    if (focus === byId('compose-body')) focus.setSelectionRange(0, 0);
  }

  function resetCompose() {
    compose.html = false;
    compose.busy = false;
    byId('compose-html').replaceChildren();
    byId('compose-error').hidden = true;
    byId('compose-attach').value = '';
    hideAutocomplete();
    updateComposeMode();
  }

  function closeCompose() {
    compose.open = false;
    byId('compose-overlay').hidden = true;
    hideAutocomplete();
  }

  function updateComposeMode() {
    const toggle = byId('compose-html-toggle');
    if (!toggle) return;
    toggle.textContent = compose.html ? t('plainText') : t('richText');
    byId('compose-body').hidden = compose.html;
    byId('compose-html').hidden = !compose.html;
    $('.html-tools').hidden = !compose.html;
  }

  /** Plain text ⇄ simple HTML: the text becomes paragraphs, the HTML its visible text. */
  function toggleComposeMode() {
    if (compose.html) {
      byId('compose-body').value = htmlToText(byId('compose-html'));
    } else {
      const lines = byId('compose-body').value.split('\n');
      byId('compose-html').replaceChildren(...lines.map(line => el('div', {}, line ? line : el('br'))));
    }
    compose.html = !compose.html;
    updateComposeMode();
  }

  function htmlToText(root) {
    const out = [];
    const walk = (node, listDepth) => {
      for (const child of node.childNodes) {
        if (child.nodeType === Node.TEXT_NODE) { out.push(child.textContent); continue; }
        if (child.nodeType !== Node.ELEMENT_NODE) continue;
        const tag = child.tagName;
        if (tag === 'BR') { out.push('\n'); continue; }
        if (tag === 'LI') out.push(`${'  '.repeat(Math.max(0, listDepth - 1))}- `);
        walk(child, tag === 'UL' || tag === 'OL' ? listDepth + 1 : listDepth);
        if (tag === 'A' && child.getAttribute('href') && child.getAttribute('href') !== child.textContent) out.push(` <${child.getAttribute('href')}>`);
        if (/^(DIV|P|LI|UL|OL|H\d|BLOCKQUOTE)$/.test(tag)) out.push('\n');
      }
    };
    walk(root, 0);
    return out.join('').replace(/\n{3,}/g, '\n\n').replace(/\n+$/, '\n');
  }

  async function formatCommand(cmd) {
    byId('compose-html').focus();
    if (cmd === 'createLink') {
      const selection = window.getSelection();
      const range = selection.rangeCount ? selection.getRangeAt(0) : null;
      const url = await ask(t('linkUrl'), { value: 'https://' });
      if (!url || !/^(https?:|mailto:)/i.test(url.trim())) return;
      byId('compose-html').focus();
      if (range) { selection.removeAllRanges(); selection.addRange(range); }
      document.execCommand('createLink', false, url.trim());
      return;
    }
    document.execCommand(cmd, false, null);
  }

  function composeForm() {
    const form = {
      to: byId('compose-to').value.trim(),
      cc: byId('compose-cc').value.trim(),
      bcc: byId('compose-bcc').value.trim(),
      subject: byId('compose-subject').value,
      text: compose.html ? htmlToText(byId('compose-html')) : byId('compose-body').value,
      attachments: compose.attachments.map(a => a.id),
    };
    if (compose.html) form.html = serializeHtml(byId('compose-html'));
    if (compose.inReplyTo) form.inReplyTo = compose.inReplyTo;
    if (compose.draft) form.draft = compose.draft;
    return form;
  }

  /** The editor's markup (the server sanitizes it again). */
  function serializeHtml(root) {
    const doc = document.implementation.createHTMLDocument('');
    const body = doc.body;
    for (const child of root.childNodes) body.append(doc.importNode(child, true));
    return `<!doctype html><html><body>${new XMLSerializer().serializeToString(body).replace(/^<body[^>]*>|<\/body>$/g, '')}</body></html>`;
  }

  async function sendCompose(e) {
    if (e) e.preventDefault();
    if (compose.busy) return;
    compose.busy = true;
    const button = byId('compose-send');
    button.disabled = true;
    byId('compose-error').hidden = true;
    try {
      await api('POST', '/send', composeForm());
      closeCompose();
      toast(t('sent'));
      loadFolders().catch(report);
      if (mail.message) {
        // the replied message is now answered
        loadMessages({ keepReader: true }).catch(report);
      }
    } catch (err) {
      if (!err.signedOut) showError(byId('compose-error'), err);
    } finally {
      compose.busy = false;
      button.disabled = false;
    }
  }

  async function saveDraft() {
    if (compose.busy) return;
    compose.busy = true;
    byId('compose-error').hidden = true;
    try {
      compose.draft = await api('POST', '/drafts', composeForm());
      toast(t('draftSaved'));
      loadFolders().catch(report);
      if (isDraftsFolder()) loadMessages().catch(report);
    } catch (err) {
      if (!err.signedOut) showError(byId('compose-error'), err);
    } finally {
      compose.busy = false;
    }
  }

  async function attachFiles(input) {
    const chosen = [...input.files];
    input.value = '';
    byId('compose-error').hidden = true;
    for (const file of chosen) {
      const form = new FormData();
      form.append('file', file, file.name);
      try {
        const upload = await api('POST', '/uploads', form);
        compose.attachments.push(upload);
        renderChips();
      } catch (err) {
        if (!err.signedOut) showError(byId('compose-error'), err);
      }
    }
  }

  function renderChips() {
    byId('compose-attachments').replaceChildren(...compose.attachments.map(a =>
      el('li', { class: 'chip', testid: 'compose-attachment' },
        el('span', { text: `${a.name} (${formatSize(a.size)})` }),
        el('button', {
          type: 'button', class: 'link small', title: t('remove'), 'aria-label': t('remove'), text: '×', testid: 'compose-attachment-remove',
          onclick: () => { compose.attachments = compose.attachments.filter(x => x !== a); renderChips(); },
        }))));
  }

  // ---- address autocomplete ---------------------------------------------------------------------

  const complete = { input: null, timer: 0, token: 0, items: [], active: -1 };

  function lastToken(value) {
    const i = value.lastIndexOf(',');
    return { head: i < 0 ? '' : value.slice(0, i + 1), token: value.slice(i + 1).trim() };
  }

  function onAddressInput(e) {
    const input = e.target;
    complete.input = input;
    clearTimeout(complete.timer);
    const { token } = lastToken(input.value);
    if (token.length < 1) { hideAutocomplete(); return; }
    complete.timer = setTimeout(() => suggest(input, token), 120);
  }

  async function suggest(input, token) {
    const mine = ++complete.token;
    let data;
    try { data = await api('GET', `/contacts/complete${query({ q: token })}`); } catch (e) { report(e); return; }
    if (mine !== complete.token || document.activeElement !== input) return;
    complete.items = data.suggestions || [];
    complete.active = -1;
    renderAutocomplete();
  }

  function renderAutocomplete() {
    const list = byId('autocomplete');
    if (!complete.items.length || !complete.input) { hideAutocomplete(); return; }
    list.replaceChildren(...complete.items.map((s, i) => el('li', {
      testid: 'autocomplete-item', class: i === complete.active ? 'active' : '', text: s.label,
      onmousedown: e => { e.preventDefault(); choose(s); },
    })));
    const box = complete.input.getBoundingClientRect();
    const parent = byId('compose').getBoundingClientRect();
    list.style.left = `${box.left - parent.left}px`;
    list.style.top = `${box.bottom - parent.top}px`;
    list.style.width = `${box.width}px`;
    list.hidden = false;
  }

  function hideAutocomplete() {
    complete.items = [];
    const list = byId('autocomplete');
    if (list) { list.hidden = true; list.replaceChildren(); }
  }

  function choose(suggestion) {
    const input = complete.input;
    if (!input) return;
    const { head } = lastToken(input.value);
    input.value = `${head ? `${head} ` : ''}${suggestion.value}, `;
    hideAutocomplete();
    input.focus();
  }

  function onAddressKey(e) {
    if (byId('autocomplete').hidden) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const n = complete.items.length;
      complete.active = (complete.active + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
      renderAutocomplete();
    } else if ((e.key === 'Enter' || e.key === 'Tab') && complete.active >= 0) {
      e.preventDefault();
      choose(complete.items[complete.active]);
    } else if (e.key === 'Escape') {
      e.stopPropagation();
      hideAutocomplete();
    }
  }

  // ---- contacts ---------------------------------------------------------------------------------

  const contacts = { list: [], editing: null, q: '' };
  const splitList = text => text.split(',').map(s => s.trim()).filter(Boolean);

  async function loadContacts() {
    const data = await api('GET', `/contacts${query({ q: contacts.q })}`);
    contacts.list = data.contacts;
    byId('contact-list').replaceChildren(...contacts.list.map(c => el('li', {
      testid: 'contact-row', class: `row${contacts.editing && contacts.editing.id === c.id ? ' active' : ''}`,
      onclick: () => editContact(c),
    }, el('strong', { text: c.name || '' }), el('span', { class: 'muted', text: (c.emails || []).join(', ') }))));
  }

  function editContact(c) {
    contacts.editing = c;
    const form = byId('contact-form');
    form.hidden = false;
    byId('contact-name').value = c ? c.name || '' : '';
    byId('contact-emails').value = c ? (c.emails || []).join(', ') : '';
    byId('contact-phone').value = c ? c.phone || '' : '';
    byId('contact-groups').value = c ? (c.groups || []).join(', ') : '';
    byId('contact-notes').value = c ? c.notes || '' : '';
    byId('contact-delete').hidden = !c;
    byId('contact-write').hidden = !c || !(c.emails || []).length;
    byId('contact-error').hidden = true;
    byId('contact-name').focus();
    for (const r of document.querySelectorAll('[data-testid=contact-row]')) r.classList.remove('active');
  }

  async function saveContact(e) {
    e.preventDefault();
    const body = {
      name: byId('contact-name').value.trim(),
      emails: splitList(byId('contact-emails').value),
      phone: byId('contact-phone').value.trim(),
      notes: byId('contact-notes').value,
      groups: splitList(byId('contact-groups').value),
    };
    try {
      const saved = contacts.editing
        ? await api('PUT', `/contacts/${encodeURIComponent(contacts.editing.id)}`, body)
        : await api('POST', '/contacts', body);
      contacts.editing = saved;
      byId('contact-delete').hidden = false;
      byId('contact-write').hidden = !(saved.emails || []).length;
      byId('contact-error').hidden = true;
      await loadContacts();
      toast(t('saved'));
    } catch (err) {
      if (!err.signedOut) showError(byId('contact-error'), err);
    }
  }

  async function deleteContact() {
    const c = contacts.editing;
    if (!c || !await confirmIt(t('confirmDelete', c.name))) return;
    try {
      await api('DELETE', `/contacts/${encodeURIComponent(c.id)}`);
      contacts.editing = null;
      byId('contact-form').hidden = true;
      await loadContacts();
    } catch (err) { report(err); }
  }

  function writeToContact() {
    const c = contacts.editing;
    if (!c || !(c.emails || []).length) return;
    const to = c.name ? `"${c.name.replace(/"/g, '')}" <${c.emails[0]}>` : c.emails[0];
    openCompose('new', null, { to }).catch(report);
  }

  async function importContacts(input) {
    const file = input.files[0];
    input.value = '';
    if (!file) return;
    try {
      const result = await api('POST', '/contacts/import', { raw: await file.text(), type: 'text/vcard' });
      toast(t('imported', result.imported));
      await loadContacts();
    } catch (err) { report(err); }
  }

  // ---- notes ------------------------------------------------------------------------------------

  const notes = { list: [], editing: null };

  async function loadNotes() {
    const data = await api('GET', '/notes');
    notes.list = data.notes;
    byId('note-list').replaceChildren(...notes.list.map(n => el('li', {
      testid: 'note-row', class: `row${notes.editing && notes.editing.id === n.id ? ' active' : ''}`,
      onclick: () => editNote(n),
    }, el('strong', { text: n.title || t('noSubject') }), el('span', { class: 'muted', text: n.updated ? formatDate(n.updated) : '' }))));
  }

  function editNote(n) {
    notes.editing = n;
    byId('note-form').hidden = false;
    byId('note-title').value = n ? n.title || '' : '';
    byId('note-body').value = n ? n.body || '' : '';
    byId('note-delete').hidden = !n;
    byId('note-error').hidden = true;
    byId('note-title').focus();
  }

  async function saveNote(e) {
    e.preventDefault();
    const body = { title: byId('note-title').value, body: byId('note-body').value };
    try {
      notes.editing = notes.editing
        ? await api('PUT', `/notes/${encodeURIComponent(notes.editing.id)}`, body)
        : await api('POST', '/notes', body);
      byId('note-delete').hidden = false;
      byId('note-error').hidden = true;
      await loadNotes();
      toast(t('saved'));
    } catch (err) {
      if (!err.signedOut) showError(byId('note-error'), err);
    }
  }

  async function deleteNote() {
    const n = notes.editing;
    if (!n || !await confirmIt(t('confirmDelete', n.title || t('noSubject')))) return;
    try {
      await api('DELETE', `/notes/${encodeURIComponent(n.id)}`);
      notes.editing = null;
      byId('note-form').hidden = true;
      await loadNotes();
    } catch (err) { report(err); }
  }

  // ---- files ------------------------------------------------------------------------------------

  const files = { folder: '/' };
  const joinPath = (folder, name) => (folder === '/' ? `/${name}` : `${folder}/${name}`);

  async function loadFiles(folder) {
    const data = await api('GET', `/files${query({ folder })}`);
    files.folder = data.folder;
    byId('file-error').hidden = true;
    renderBreadcrumb();
    const rows = [
      ...data.folders.map(name => el('tr', { testid: 'folder-row', 'data-name': name },
        el('td', {}, el('button', { type: 'button', class: 'link', text: `📁 ${name}`, onclick: () => loadFiles(joinPath(files.folder, name)).catch(report) })),
        el('td'), el('td'),
        el('td', { class: 'actions' }, fileActions(name, true)))),
      ...data.files.map(f => el('tr', { testid: 'file-row', 'data-name': f.name },
        el('td', {}, el('a', {
          testid: 'file-download', href: `${API}/files/download${query({ path: joinPath(files.folder, f.name) })}`, download: f.name, text: f.name,
        })),
        el('td', { text: formatSize(f.size) }),
        el('td', { text: formatDate(f.updated) }),
        el('td', { class: 'actions' }, fileActions(f.name, false)))),
    ];
    byId('file-list').replaceChildren(...rows);
    const share = data.quotaBytes ? Math.min(100, (data.usedBytes / data.quotaBytes) * 100) : 0;
    byId('quota-used').style.width = `${share.toFixed(1)}%`;
    byId('quota-used').classList.toggle('full', share > 90);
    byId('quota-text').textContent = t('used', formatSize(data.usedBytes), formatSize(data.quotaBytes));
  }

  function fileActions(name, isFolder) {
    const path = joinPath(files.folder, name);
    return [
      el('button', { type: 'button', class: 'small', testid: 'file-move', text: t('rename'), onclick: () => moveFile(path) }),
      el('button', {
        type: 'button', class: 'small danger', testid: 'file-delete', text: t('delete'),
        onclick: () => deleteFile(path, name, isFolder),
      }),
    ];
  }

  function renderBreadcrumb() {
    const parts = files.folder.split('/').filter(Boolean);
    const crumbs = [el('button', { type: 'button', class: 'link', text: t('top'), onclick: () => loadFiles('/').catch(report) })];
    parts.forEach((p, i) => {
      const path = `/${parts.slice(0, i + 1).join('/')}`;
      crumbs.push(el('span', { class: 'muted', text: ' / ' }),
        el('button', { type: 'button', class: 'link', text: p, onclick: () => loadFiles(path).catch(report) }));
    });
    byId('file-breadcrumb').replaceChildren(...crumbs);
  }

  async function fileCall(work) {
    try {
      await work();
      await loadFiles(files.folder);
    } catch (err) {
      if (!err.signedOut) showError(byId('file-error'), err);
    }
  }

  async function uploadFiles(input) {
    const chosen = [...input.files];
    input.value = '';
    if (!chosen.length) return;
    const form = new FormData();
    for (const f of chosen) form.append('file', f, f.name);
    await fileCall(() => api('POST', `/files${query({ folder: files.folder })}`, form));
  }

  async function newFileFolder() {
    const name = await ask(t('fileFolderName'));
    if (!name) return;
    await fileCall(() => api('POST', '/files/folders', { path: joinPath(files.folder, name.trim()) }));
  }

  async function moveFile(from) {
    const to = await ask(t('renameTo'), { value: from });
    if (!to || to === from) return;
    const target = to.startsWith('/') ? to : joinPath(files.folder, to);
    await fileCall(() => api('POST', '/files/move', { from, to: target }));
  }

  async function deleteFile(path, name, isFolder) {
    if (!await confirmIt(isFolder ? t('confirmDeleteFolder', name) : t('confirmDelete', name))) return;
    await fileCall(() => api('DELETE', `/files${query({ path })}`));
  }

  // ---- settings ---------------------------------------------------------------------------------

  async function loadSettingsForms() {
    const [s, vacation, filters] = await Promise.all([api('GET', '/settings'), api('GET', '/settings/vacation'), api('GET', '/settings/filters')]);
    settings = { ...settings, ...s };
    const form = byId('settings-form');
    form.elements.displayName.value = s.displayName || '';
    form.elements.replyTo.value = s.replyTo || '';
    form.elements.signature.value = s.signature || '';
    form.elements.language.value = s.language || lang;
    form.elements.timeZone.value = s.timeZone || '';
    form.elements.pageSize.value = s.pageSize || 50;
    form.elements.threads.checked = !!s.threads;
    form.elements.remoteImages.value = s.remoteImages || 'ask';
    const zones = document.getElementById('zones');
    if (!zones.children.length && Intl.supportedValuesOf) {
      zones.replaceChildren(...Intl.supportedValuesOf('timeZone').map(z => el('option', { value: z })));
    }
    const v = byId('vacation-form').elements;
    v.enabled.checked = !!vacation.enabled;
    v.subject.value = vacation.subject || '';
    v.body.value = vacation.body || '';
    v.days.value = vacation.days || 7;
    byId('filters-form').elements.script.value = filters.script || '';
    for (const id of ['settings-error', 'password-error', 'vacation-error', 'filters-error']) byId(id).hidden = true;
  }

  async function submitForm(e, errorId, work) {
    e.preventDefault();
    const error = byId(errorId);
    error.hidden = true;
    try {
      if (await work(e.target.elements) !== 'toasted') toast(t('saved'));
    } catch (err) {
      if (!err.signedOut) showError(error, err);
    }
  }

  async function saveSettings(f) {
    const saved = await api('PUT', '/settings', {
      displayName: f.displayName.value, replyTo: f.replyTo.value, signature: f.signature.value, language: f.language.value,
      timeZone: f.timeZone.value, pageSize: Number(f.pageSize.value) || 50, threads: f.threads.checked, remoteImages: f.remoteImages.value,
    });
    settings = { ...settings, ...saved };
    session.displayName = saved.displayName || '';
    byId('who').textContent = session.displayName ? `${session.displayName} <${session.address}>` : session.address;
    applyLanguage(settings.language);
    mail.threads = !!settings.threads;
    byId('threads-toggle').checked = mail.threads;
    renderFolders();
  }

  async function changePassword(f) {
    await api('POST', '/settings/password', { current: f.current.value, password: f.password.value });
    f.current.value = '';
    f.password.value = '';
    // This session stays; the mailbox's other sessions end.
    toast(t('passwordChanged'));
    return 'toasted';
  }

  const saveVacation = f => api('PUT', '/settings/vacation', {
    enabled: f.enabled.checked, subject: f.subject.value, body: f.body.value, days: Number(f.days.value) || 7,
  });

  const saveFilters = f => api('PUT', '/settings/filters', { script: f.script.value });

  // ---- keyboard ---------------------------------------------------------------------------------

  function isTyping(target) {
    return target instanceof HTMLElement
      && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function overlayOpen() {
    return !byId('dialog-overlay').hidden || !byId('shortcuts-overlay').hidden;
  }

  function onKey(e) {
    if (e.key === 'Escape') {
      if (!byId('shortcuts-overlay').hidden) byId('shortcuts-overlay').hidden = true;
      else if (compose.open && byId('autocomplete').hidden) closeCompose();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target) || compose.open || overlayOpen()) return;
    if (document.getElementById('app').hidden) return;
    const inMail = currentView === 'mail';
    const action = {
      c: () => openCompose().catch(report),
      '?': () => { byId('shortcuts-overlay').hidden = false; byId('shortcuts-close').focus(); },
      '/': () => { showView('mail'); byId('search').focus(); },
      j: () => inMail && moveSelection(1),
      k: () => inMail && moveSelection(-1),
      r: () => inMail && mail.message && openCompose('reply', mail.message).catch(report),
      a: () => inMail && mail.message && openCompose('all', mail.message).catch(report),
      f: () => inMail && mail.message && openCompose('forward', mail.message).catch(report),
      s: () => inMail && mail.message && setFlag(mail.message.uid, !mail.message.flagged),
      u: () => inMail && markUnread(),
      Delete: () => inMail && deleteMessage(),
      '#': () => inMail && deleteMessage(),
    }[e.key];
    if (!action) return;
    e.preventDefault();
    action();
  }

  // ---- wiring -----------------------------------------------------------------------------------

  function wire() {
    document.getElementById('login-form').addEventListener('submit', signIn);
    byId('sign-out').addEventListener('click', signOut);
    for (const b of document.querySelectorAll('.nav [data-view]')) {
      b.addEventListener('click', () => {
        showView(b.dataset.view);
        if (b.dataset.view === 'mail') b.blur();
      });
    }
    byId('help-open').addEventListener('click', () => { byId('shortcuts-overlay').hidden = false; });
    byId('shortcuts-close').addEventListener('click', () => { byId('shortcuts-overlay').hidden = true; });
    document.addEventListener('keydown', onKey);

    // mail
    byId('compose-open').addEventListener('click', () => openCompose().catch(report));
    byId('folder-new').addEventListener('click', newFolder);
    document.getElementById('search-form').addEventListener('submit', e => { e.preventDefault(); search(byId('search').value); });
    byId('search').addEventListener('keydown', e => { if (e.key === 'Escape') { byId('search').blur(); if (mail.q) search(''); } });
    byId('sort').addEventListener('change', e => { mail.sort = e.target.value; mail.offset = 0; loadMessages().catch(report); });
    byId('sort-order').addEventListener('click', () => {
      mail.order = mail.order === 'desc' ? 'asc' : 'desc';
      updateSortOrder();
      loadMessages().catch(report);
    });
    byId('threads-toggle').addEventListener('change', e => { mail.threads = e.target.checked; mail.offset = 0; loadMessages().catch(report); });
    byId('page-prev').addEventListener('click', () => page(-1));
    byId('page-next').addEventListener('click', () => page(1));
    byId('reply').addEventListener('click', () => mail.message && openCompose('reply', mail.message).catch(report));
    byId('reply-all').addEventListener('click', () => mail.message && openCompose('all', mail.message).catch(report));
    byId('forward').addEventListener('click', () => mail.message && openCompose('forward', mail.message).catch(report));
    byId('delete').addEventListener('click', deleteMessage);
    byId('flag').addEventListener('click', () => mail.message && setFlag(mail.message.uid, !mail.message.flagged));
    byId('mark-unread').addEventListener('click', markUnread);
    byId('junk').addEventListener('click', junkMessage);
    byId('move-target').addEventListener('change', e => { const target = e.target.value; e.target.value = ''; moveMessage(target); });
    byId('remote-images-show').addEventListener('click', () => { byId('remote-images-bar').hidden = true; showBody(true); });

    // compose
    byId('compose').addEventListener('submit', sendCompose);
    byId('compose-save').addEventListener('click', saveDraft);
    byId('compose-cancel').addEventListener('click', closeCompose);
    byId('compose-attach').addEventListener('change', e => attachFiles(e.target));
    byId('compose-html-toggle').addEventListener('click', toggleComposeMode);
    for (const b of document.querySelectorAll('.html-tools [data-cmd]')) {
      b.addEventListener('mousedown', e => e.preventDefault());
      b.addEventListener('click', () => formatCommand(b.dataset.cmd));
    }
    for (const input of document.querySelectorAll('[data-addresses]')) {
      input.addEventListener('input', onAddressInput);
      input.addEventListener('keydown', onAddressKey);
      input.addEventListener('blur', () => setTimeout(() => { if (complete.input === input && document.activeElement !== input) hideAutocomplete(); }, 150));
    }
    // Enter in a one-line field must not send the message.
    byId('compose').addEventListener('keydown', e => {
      if (e.key === 'Enter' && e.target.tagName === 'INPUT' && e.target.type !== 'submit') e.preventDefault();
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) sendCompose(e);
    });

    // contacts
    byId('contact-new').addEventListener('click', () => editContact(null));
    byId('contact-form').addEventListener('submit', saveContact);
    byId('contact-delete').addEventListener('click', deleteContact);
    byId('contact-write').addEventListener('click', writeToContact);
    byId('contact-import').addEventListener('change', e => importContacts(e.target));
    let contactTimer = 0;
    byId('contact-search').addEventListener('input', e => {
      clearTimeout(contactTimer);
      contactTimer = setTimeout(() => { contacts.q = e.target.value.trim(); loadContacts().catch(report); }, 200);
    });

    // notes
    byId('note-new').addEventListener('click', () => editNote(null));
    byId('note-form').addEventListener('submit', saveNote);
    byId('note-delete').addEventListener('click', deleteNote);

    // files
    byId('file-upload').addEventListener('change', e => uploadFiles(e.target));
    byId('file-new-folder').addEventListener('click', newFileFolder);

    // settings
    byId('settings-form').addEventListener('submit', e => submitForm(e, 'settings-error', saveSettings));
    byId('password-form').addEventListener('submit', e => submitForm(e, 'password-error', changePassword));
    byId('vacation-form').addEventListener('submit', e => submitForm(e, 'vacation-error', saveVacation));
    byId('filters-form').addEventListener('submit', e => submitForm(e, 'filters-error', saveFilters));

    window.addEventListener('pagehide', () => { if (events) { events.close(); events = null; } });
  }

  wire();
  start();
})();
