// Appliance admin panel: a single page over /api/v1 (docs/api.md), no framework, no build step.
//
// Implementation notes
// - Served under a strict CSP (script-src 'self', style-src 'self'): no inline scripts or style
//   attributes, no eval. Every server-provided string reaches the page through textContent or
//   setAttribute on elements made here; innerHTML is never used.
// - The session cookie is HttpOnly; the panel keeps only the CSRF token (from POST or
//   GET /api/v1/session) and sends it as X-CSRF-Token on every non-GET request.
// - Hash routes (#/page?query). Each page is a <template> of index.html cloned into #view;
//   async work checks that its page is still in the document before touching it, so a late
//   answer after navigating away changes nothing (and job polling stops).
// - Any 401 outside the login form ends the session in the panel and shows #/login; the page
//   asked for is opened again after signing in.
// - Nothing refreshes by itself except job progress and the Monitoring page: a request keeps
//   the session alive, so Monitoring stops refreshing after the server's 30-minute idle expiry
//   without a key or pointer event, and an idle panel still signs out.
'use strict';

(() => {
  const API = '/api/v1';
  const PAGE_SIZE = 50;
  const JOB_POLL_MS = 500;

  const session = { name: null, csrf: null, totp: false };
  let nextRoute = null;   // the route to open after signing in
  let flash = null;       // for the login page: why the session ended (text), or an Error to show

  const $ = (selector, root = document) => root.querySelector(selector);
  const byId = (root, testid) => root.querySelector(`[data-testid="${testid}"]`);
  const view = document.getElementById('view');
  const errorBox = byId(document, 'error');
  const noticeBox = byId(document, 'notice');

  // ---- API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  /** A mistake of the admin's that the panel itself catches (a bad size, an empty file). */
  class UserError extends Error {}

  async function readBody(response) {
    if (response.status === 204) return null;
    const text = await response.text();
    if (!text) return null;
    if (/json/.test(response.headers.get('Content-Type') || '')) {
      try { return JSON.parse(text); } catch { /* fall through: shown as text */ }
    }
    return text;
  }

  /**
   * Calls the API; resolves to the parsed answer, or throws ApiError with the problem details.
   * options.raw: the body is sent as is with options.contentType; options.login: a 401 is the
   * caller's business (login form, session probe), not the end of the session.
   */
  async function api(method, path, body, options = {}) {
    const headers = { Accept: 'application/json, application/problem+json' };
    let payload;
    if (body !== undefined) {
      headers['Content-Type'] = options.contentType || 'application/json';
      payload = options.contentType ? body : JSON.stringify(body);
    }
    if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
    let response;
    try {
      response = await fetch(API + path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, { title: 'Network error', detail: `The server cannot be reached (${e.message}).` });
    }
    const data = await readBody(response);
    if (response.ok) return data;
    const problem = data && typeof data === 'object'
      ? data
      : { status: response.status, detail: (typeof data === 'string' && data.trim()) || `${method} ${path} answered ${response.status} ${response.statusText}` };
    const error = new ApiError(response.status, problem);
    if (response.status === 401 && !options.login) {
      error.signedOut = true;
      signedOut('Your session has ended. Please sign in again.', true);
    }
    throw error;
  }

  const q = params => {
    const s = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') s.set(k, String(v));
    const text = s.toString();
    return text ? `?${text}` : '';
  };
  const seg = value => encodeURIComponent(value);

  // ---- Messages -------------------------------------------------------------------------

  function clearMessages() {
    errorBox.hidden = true;
    noticeBox.hidden = true;
  }

  /** Shows an error (ApiError, Error, or a problem-like {detail, errors}) in the error area. */
  function showError(error) {
    if (error && error.signedOut) return; // the login page says why
    const problem = error instanceof ApiError ? error.problem : (error && error.detail !== undefined ? error : { detail: String(error && error.message || error) });
    let detail = problem.detail || problem.title || 'Something went wrong.';
    if (error instanceof ApiError && error.status) detail += ` (${error.status})`;
    byId(errorBox, 'error-detail').textContent = detail;
    const list = byId(errorBox, 'error-list');
    list.replaceChildren(...(Array.isArray(problem.errors) ? problem.errors : []).map(e =>
      el('li', { testid: 'error-item' }, errorLine(e))));
    noticeBox.hidden = true;
    errorBox.hidden = false;
    errorBox.scrollIntoView({ block: 'nearest' });
    // Anything else thrown is a bug of the panel: say so where a browser test looks.
    if (error instanceof Error && !(error instanceof ApiError) && !(error instanceof UserError)) console.error(error);
  }

  function errorLine(e) {
    const reason = e.reason || e.detail || JSON.stringify(e);
    if (e.line !== undefined && e.line !== null) return `Line ${e.line}: ${reason}`;
    if (e.index !== undefined && e.index !== null) return `Entry ${e.index}: ${reason}`;
    return reason;
  }

  function showNotice(text) {
    errorBox.hidden = true;
    noticeBox.textContent = text;
    noticeBox.hidden = false;
  }

  byId(errorBox, 'error-close').addEventListener('click', () => { errorBox.hidden = true; });

  // ---- DOM and formatting helpers -------------------------------------------------------

  /** el('td', {testid, class, title, ...attributes}, ...children): children are nodes or text. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'testid') node.dataset.testid = v;
      else if (k === 'class') node.className = v;
      else if (k === 'data') Object.assign(node.dataset, v);
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  const field = (form, name) => form.elements.namedItem(name);

  const UNITS = [['T', 2 ** 40], ['G', 2 ** 30], ['M', 2 ** 20], ['K', 2 ** 10]];

  /** "500M", "2G", "1T", "1048576", "0" → bytes (binary units, as the CLI); null when not a size. */
  function parseSize(text) {
    const m = /^\s*(\d+)\s*([KMGT])?B?\s*$/i.exec(text || '');
    if (!m) return null;
    const unit = m[2] ? UNITS.find(([u]) => u === m[2].toUpperCase())[1] : 1;
    const n = Number(m[1]) * unit;
    return Number.isSafeInteger(n) ? n : null;
  }

  /** Approximate size for reading: 0 → "0 B", 1536 → "1.5K", 2 GiB → "2G". */
  function formatBytes(n) {
    if (n === null || n === undefined) return '–';
    for (const [u, size] of UNITS) {
      if (n >= size) {
        const v = n / size;
        return `${v >= 100 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)}${u}`;
      }
    }
    return `${n} B`;
  }

  /** A quota as the CLI writes it ("unlimited", "2G"), approximate when not a whole unit. */
  function formatQuota(n) {
    if (!n) return 'unlimited';
    for (const [u, size] of UNITS) if (n >= size && n % size === 0) return `${n / size}${u}`;
    return formatBytes(n);
  }

  const formatCount = n => (typeof n === 'number' ? n.toLocaleString() : (n ?? '–'));

  /** Unix seconds (or an ISO date string) → local date and time. */
  function formatTime(t) {
    if (t === null || t === undefined || t === '') return '–';
    const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
    if (Number.isNaN(d.getTime())) return String(t);
    return d.toLocaleString(undefined, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }
  const isoTime = t => {
    const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
    return Number.isNaN(d.getTime()) ? '' : d.toISOString();
  };

  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

  /** Runs fn with the button disabled; errors go to the error area. */
  async function busy(button, fn) {
    if (button) button.disabled = true;
    try { await fn(); } catch (e) { showError(e); } finally { if (button) button.disabled = false; }
  }

  /** Handles a form's submit with its submit button disabled meanwhile. */
  function onSubmit(form, fn) {
    form.addEventListener('submit', event => {
      event.preventDefault();
      busy(form.querySelector('[type=submit]'), () => fn(form));
    });
  }

  /**
   * Previous/next buttons over a list loaded by load(offset): while a page loads both are off;
   * afterwards show(offset, count, total) sets them from what the server answered.
   */
  function pager(root, noun, load) {
    const prev = byId(root, 'page-prev');
    const next = byId(root, 'page-next');
    const info = byId(root, 'page-info');
    let shown = { offset: 0, count: 0, total: 0 };
    function show(offset, count, total) {
      shown = { offset, count, total };
      info.textContent = total === 0 ? `No ${noun}`
        : `Showing ${formatCount(offset + 1)}–${formatCount(offset + count)} of ${formatCount(total)}`;
      prev.disabled = offset <= 0;
      next.disabled = offset + count >= total;
    }
    async function go(offset) {
      prev.disabled = next.disabled = true;
      try { await load(Math.max(0, offset)); } catch (e) { show(shown.offset, shown.count, shown.total); showError(e); }
    }
    prev.addEventListener('click', () => go(shown.offset - PAGE_SIZE));
    next.addEventListener('click', () => go(shown.offset + PAGE_SIZE));
    return show;
  }

  function emptyRow(tbody, columns, text) {
    tbody.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: columns }, text)));
  }

  // ---- Session and routing -------------------------------------------------------------

  function signedIn(answer) {
    session.name = answer.name;
    session.csrf = answer.csrf;
    if (typeof answer.totp === 'boolean') session.totp = answer.totp;
    byId(document, 'admin-name').textContent = session.name;
  }

  function signedOut(message, comeBack) {
    session.name = session.csrf = null;
    session.totp = false;
    const current = location.hash;
    if (current.startsWith('#/login')) return; // a late answer of the ended session: the login form stays as typed
    flash = message || null;
    nextRoute = comeBack && current ? current : null;
    location.hash = '#/login';
  }

  byId(document, 'logout').addEventListener('click', event => busy(event.currentTarget, async () => {
    try {
      await api('DELETE', '/session', undefined, { login: true });
    } catch (e) {
      if (e.status !== 401) throw e;
    }
    signedOut('You have signed out.', false);
  }));

  const pages = {
    login: renderLogin, dashboard: renderDashboard, domains: renderDomains, mailboxes: renderMailboxes,
    aliases: renderAliases, import: renderImport, provisioning: renderProvisioning, audit: renderAudit,
    security: renderSecurity, queue: renderQueue, monitoring: renderMonitoring,
  };

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const at = raw.indexOf('?');
    return {
      page: (at < 0 ? raw : raw.slice(0, at)) || 'dashboard',
      params: new URLSearchParams(at < 0 ? '' : raw.slice(at + 1)),
    };
  }

  function route() {
    const { page, params } = parseHash();
    if (session.name === null && page !== 'login') {
      nextRoute = location.hash;
      location.replace('#/login');
      return;
    }
    if (session.name !== null && page === 'login') {
      location.replace('#/dashboard');
      return;
    }
    clearMessages();
    byId(document, 'topbar').hidden = session.name === null;
    document.body.classList.toggle('signed-out', session.name === null);
    for (const a of document.querySelectorAll('.nav a')) {
      if (a.getAttribute('href') === `#/${page}`) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const render = Object.hasOwn(pages, page) ? pages[page] : null;
    const template = document.getElementById(render ? `page-${page}` : 'page-notfound');
    const root = template.content.firstElementChild.cloneNode(true);
    view.replaceChildren(root);
    const title = $('h1', root);
    document.title = `${title ? title.textContent : 'Admin'} · Appliance`;
    if (render) Promise.resolve().then(() => render(root, params)).catch(showError);
  }

  window.addEventListener('hashchange', route);

  async function start() {
    try {
      signedIn(await api('GET', '/session', undefined, { login: true }));
    } catch (e) {
      if (e.status !== 401) flash = e;
    }
    route();
  }

  // ---- Login ---------------------------------------------------------------------------

  function renderLogin(root) {
    const form = byId(root, 'login-form');
    const totpRow = byId(root, 'login-totp-row');
    if (flash instanceof Error) showError(flash);
    else if (flash) showNotice(flash);
    flash = null;
    field(form, 'name').focus();
    onSubmit(form, async () => {
      const body = { name: field(form, 'name').value.trim(), password: field(form, 'password').value };
      const totp = field(form, 'totp').value.trim();
      if (!totpRow.hidden && totp) body.totp = totp;
      try {
        signedIn(await api('POST', '/session', body, { login: true }));
      } catch (e) {
        if (e.status === 401 && /\/totp-required$/.test(e.problem.type || '')) {
          totpRow.hidden = false;
          field(form, 'totp').required = true;
          field(form, 'totp').focus();
          showNotice('Enter the 6-digit code of your authenticator app.');
          return;
        }
        throw e;
      }
      const target = nextRoute && !nextRoute.startsWith('#/login') ? nextRoute : '#/dashboard';
      nextRoute = null;
      location.hash = target;
    });
  }

  // ---- Dashboard -----------------------------------------------------------------------

  function nodeRows(tbody, nodes, lastSeq) {
    if (!nodes || nodes.length === 0) return emptyRow(tbody, 6, 'No node has reported yet.');
    tbody.replaceChildren(...nodes.map(n => {
      const bar = el('progress', { testid: 'node-progress', max: Math.max(lastSeq || 0, 1), value: lastSeq ? Math.min(n.appliedSeq || 0, lastSeq) : 1 });
      return el('tr', { testid: 'node-row', data: { node: n.node } },
        el('td', { testid: 'node-name' }, n.node),
        el('td', { class: 'num', testid: 'node-applied' }, formatCount(n.appliedSeq)),
        el('td', { class: 'num', testid: 'node-pending' }, formatCount(n.pending)),
        el('td', {}, bar),
        el('td', { testid: 'node-error', class: n.lastError ? 'bad' : 'muted' }, n.lastError || 'none'),
        // 0: the node has applied nothing yet (not 1 January 1970).
        n.updated ? el('td', { title: isoTime(n.updated), testid: 'node-updated' }, formatTime(n.updated))
          : el('td', { class: 'muted', testid: 'node-updated' }, 'never'));
    }));
  }

  async function renderDashboard(root) {
    const d = await api('GET', '/dashboard');
    if (!root.isConnected) return;
    const set = (id, text) => { byId(root, id).textContent = text; };
    set('count-domains', formatCount(d.domains));
    set('count-mailboxes', formatCount(d.mailboxes));
    set('count-aliases', formatCount(d.aliases));
    set('count-disabled', formatCount(d.disabled));
    // Not every server reports the space used: then the card is left out rather than shown empty.
    const used = typeof d.usedBytes === 'number';
    byId(root, 'count-used').closest('.stat').hidden = !used;
    if (used) set('count-used', formatBytes(d.usedBytes));
    set('dashboard-node', d.node ?? '');
    set('dashboard-version', d.version ?? '');
    const lastSeq = d.journal ? d.journal.lastSeq : null;
    set('dashboard-lastseq', `request ${formatCount(lastSeq)}`);
    nodeRows($('tbody', byId(root, 'dashboard-nodes')), d.nodes, lastSeq);
  }

  // ---- Jobs ----------------------------------------------------------------------------

  /**
   * Shows a job's state, phase and progress in panel until it ends (polled every 500 ms);
   * a failed job's reasons go to the error area. Resolves to the last Job, or null when the
   * page was left.
   */
  async function followJob(panel, id, describeDone, failedText) {
    const progress = el('progress', { testid: 'job-progress' });
    const stateText = el('span', { testid: 'job-state' }, 'running');
    const phase = el('span', { testid: 'job-phase' }, '…');
    const count = el('span', { testid: 'job-count', class: 'muted' });
    const result = el('p', { testid: 'job-result', class: 'job-result' });
    panel.replaceChildren(
      el('p', {}, 'Job ', el('strong', { testid: 'job-id' }, String(id)), ': ', stateText, ', phase ', phase),
      el('div', { class: 'progress-line' }, progress, count),
      result);
    panel.hidden = false;
    for (;;) {
      const job = await api('GET', `/jobs/${seg(id)}`);
      if (!panel.isConnected) return null;
      stateText.textContent = job.state;
      phase.textContent = job.phase || '';
      panel.dataset.state = job.state;
      if (job.total > 0) {
        progress.max = job.total;
        progress.value = Math.min(job.done || 0, job.total);
        count.textContent = `${formatCount(job.done || 0)} / ${formatCount(job.total)}`;
      } else {
        progress.removeAttribute('value'); // indeterminate until the total is known
      }
      if (job.state === 'done') {
        progress.max = 1;
        progress.value = 1;
        result.textContent = describeDone(job);
        result.className = 'job-result good';
        return job;
      }
      if (job.state === 'failed') {
        const n = (job.errors || []).length;
        result.textContent = `Failed${n ? ` with ${n} error${n === 1 ? '' : 's'}` : ''}: ${failedText}`;
        // The reasons, with their line numbers, go to the error area like any problem's.
        result.className = 'job-result bad';
        showError({ detail: `Job ${job.id ?? id} failed: ${failedText}`, errors: job.errors || [] });
        return job;
      }
      await sleep(JOB_POLL_MS);
      if (!panel.isConnected) return null;
    }
  }

  // ---- Domains -------------------------------------------------------------------------

  async function renderDomains(root) {
    const tbody = $('tbody', byId(root, 'domains-table'));
    const quotaForm = byId(root, 'domain-quota-form');
    const select = field(quotaForm, 'domain');

    async function load() {
      const domains = await api('GET', '/domains');
      if (!root.isConnected) return;
      const chosen = select.value;
      select.replaceChildren(...domains.map(d => el('option', { value: d.name }, d.name)));
      if (domains.some(d => d.name === chosen)) select.value = chosen;
      if (domains.length === 0) return emptyRow(tbody, 5, 'No domains yet.');
      tbody.replaceChildren(...domains.map(d => el('tr', { testid: 'domain-row', data: { domain: d.name } },
        el('td', { testid: 'domain-name' }, el('a', { href: `#/mailboxes${q({ domain: d.name })}` }, d.name)),
        el('td', { class: 'num', testid: 'domain-mailboxes' }, formatCount(d.mailboxes)),
        el('td', { class: 'num', testid: 'domain-aliases' }, formatCount(d.aliases)),
        el('td', { title: isoTime(d.created) }, formatTime(d.created)),
        el('td', { class: 'actions' }, el('button', {
          type: 'button', class: 'danger small', testid: 'domain-delete',
          on: { click: e => busy(e.currentTarget, () => remove(d.name)) },
        }, 'Delete')))));
    }

    async function remove(name) {
      if (!confirm(`Delete the domain ${name}? It must have no mailboxes left.`)) return;
      await api('DELETE', `/domains/${seg(name)}`);
      showNotice(`Domain ${name} deleted.`);
      await load();
    }

    onSubmit(byId(root, 'domain-add-form'), async form => {
      const name = field(form, 'name').value.trim();
      const answer = await api('POST', '/domains', { name });
      form.reset();
      showNotice(`Domain ${answer && answer.name ? answer.name : name} added.`);
      await load();
    });

    onSubmit(quotaForm, async form => {
      const domain = select.value;
      const text = field(form, 'quota').value;
      const quotaBytes = parseSize(text);
      if (!domain) throw new UserError('Add a domain first.');
      if (quotaBytes === null) throw new UserError(`"${text}" is not a size: write e.g. 500M, 2G, 1T, or 0 for unlimited.`);
      const { job } = await api('PUT', `/domains/${seg(domain)}/quota`, { quotaBytes });
      clearMessages();
      await followJob(byId(root, 'job'), job,
        j => `Quota ${formatQuota(quotaBytes)} set on ${formatCount(j.done)} mailbox${j.done === 1 ? '' : 'es'} of ${domain}.`,
        `the quota of ${domain} was not changed everywhere.`);
    });

    await load();
  }

  // ---- Mailboxes -----------------------------------------------------------------------

  function usageCell(m) {
    if (m.usedBytes === null || m.usedBytes === undefined) {
      return el('td', { class: 'muted', testid: 'mailbox-usage-text' }, 'on the other node');
    }
    if (!m.quotaBytes) {
      return el('td', {}, el('span', { testid: 'mailbox-usage-text' }, `${formatBytes(m.usedBytes)} of unlimited`));
    }
    const ratio = m.usedBytes / m.quotaBytes;
    return el('td', { class: 'usage' },
      el('meter', {
        testid: 'mailbox-usage', min: 0, max: m.quotaBytes, value: Math.min(m.usedBytes, m.quotaBytes),
        low: Math.round(m.quotaBytes * 0.75), high: Math.round(m.quotaBytes * 0.9), optimum: 0,
        title: `${(ratio * 100).toFixed(1)}%`,
      }),
      el('span', { testid: 'mailbox-usage-text' }, `${formatBytes(m.usedBytes)} of ${formatQuota(m.quotaBytes)} (${Math.round(ratio * 100)}%)`));
  }

  async function renderMailboxes(root, params) {
    const filter = byId(root, 'mailbox-filter-form');
    const tbody = $('tbody', byId(root, 'mailboxes-table'));
    const showPage = pager(root, 'mailboxes', offset => { state.offset = offset; return load(); });
    const state = {
      search: params.get('search') || '',
      domain: params.get('domain') || '',
      offset: Math.max(0, parseInt(params.get('offset') || '0', 10) || 0),
    };
    field(filter, 'search').value = state.search;

    const domains = await api('GET', '/domains');
    if (!root.isConnected) return;
    const domainSelect = field(filter, 'domain');
    domainSelect.append(...domains.map(d => el('option', { value: d.name }, d.name)));
    if (state.domain && !domains.some(d => d.name === state.domain)) domainSelect.append(el('option', { value: state.domain }, state.domain));
    domainSelect.value = state.domain;

    async function load() {
      history.replaceState(null, '', `#/mailboxes${q({ domain: state.domain, search: state.search, offset: state.offset || '' })}`);
      const page = await api('GET', `/mailboxes${q({ domain: state.domain, search: state.search, offset: state.offset, limit: PAGE_SIZE })}`);
      if (!root.isConnected) return;
      const items = page.items || [];
      if (items.length === 0 && state.offset > 0 && page.total > 0) {
        state.offset = Math.max(0, Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE); // the last page shrank
        return load();
      }
      showPage(page.offset ?? state.offset, items.length, page.total);
      if (items.length === 0) return emptyRow(tbody, 5, state.search || state.domain ? 'No mailbox matches.' : 'No mailboxes yet.');
      tbody.replaceChildren(...items.map(row));
    }

    function row(m) {
      const action = (testid, text, fn, cls = 'secondary small') =>
        el('button', { type: 'button', class: cls, testid, on: { click: e => busy(e.currentTarget, fn) } }, text);
      return el('tr', { testid: 'mailbox-row', data: { address: m.address }, class: m.enabled ? '' : 'disabled' },
        el('td', { testid: 'mailbox-address' }, m.address),
        el('td', { testid: 'mailbox-quota' }, formatQuota(m.quotaBytes)),
        usageCell(m),
        el('td', {}, el('span', { testid: 'mailbox-state', class: m.enabled ? 'badge good' : 'badge bad' }, m.enabled ? 'enabled' : 'disabled')),
        el('td', { class: 'actions' },
          action('mailbox-password', 'Reset password', () => resetPassword(m)),
          action('mailbox-set-quota', 'Quota', () => setQuota(m)),
          action('mailbox-toggle', m.enabled ? 'Disable' : 'Enable', () => toggle(m)),
          action('mailbox-delete', 'Delete', () => remove(m), 'danger small')));
    }

    async function patch(m, body, done) {
      await api('PATCH', `/mailboxes/${seg(m.address)}`, body);
      showNotice(done);
      await load();
    }

    async function resetPassword(m) {
      const password = prompt(`New password for ${m.address}:`);
      if (password === null) return;
      if (password === '') throw new UserError('The new password is empty: nothing changed.');
      await patch(m, { password }, `Password of ${m.address} changed.`);
    }

    async function setQuota(m) {
      const text = prompt(`Quota for ${m.address} (e.g. 500M, 2G; 0 = unlimited):`, m.quotaBytes ? formatQuota(m.quotaBytes) : '0');
      if (text === null) return;
      const quotaBytes = parseSize(text);
      if (quotaBytes === null) throw new UserError(`"${text}" is not a size: write e.g. 500M, 2G, 1T, or 0 for unlimited.`);
      await patch(m, { quotaBytes }, `Quota of ${m.address} set to ${formatQuota(quotaBytes)}.`);
    }

    const toggle = m => patch(m, { enabled: !m.enabled }, `${m.address} ${m.enabled ? 'disabled' : 'enabled'}.`);

    async function remove(m) {
      if (!confirm(`Delete the mailbox ${m.address} and all its mail?`)) return;
      await api('DELETE', `/mailboxes/${seg(m.address)}`);
      showNotice(`Mailbox ${m.address} deleted.`);
      await load();
    }

    onSubmit(filter, async form => {
      state.search = field(form, 'search').value.trim();
      state.domain = domainSelect.value;
      state.offset = 0;
      clearMessages();
      await load();
    });
    domainSelect.addEventListener('change', () => filter.requestSubmit());

    onSubmit(byId(root, 'mailbox-add-form'), async form => {
      const body = { address: field(form, 'address').value.trim(), password: field(form, 'password').value };
      const quotaText = field(form, 'quota').value.trim();
      if (quotaText) {
        body.quotaBytes = parseSize(quotaText);
        if (body.quotaBytes === null) throw new UserError(`"${quotaText}" is not a size: write e.g. 500M, 2G, 1T, or 0 for unlimited.`);
      }
      const m = await api('POST', '/mailboxes', body);
      form.reset();
      showNotice(`Mailbox ${m && m.address ? m.address : body.address} added.`);
      await load();
    });

    await load();
  }

  // ---- Aliases -------------------------------------------------------------------------

  async function renderAliases(root, params) {
    const tbody = $('tbody', byId(root, 'aliases-table'));
    const domainSelect = field(byId(root, 'alias-filter-form'), 'domain');
    let domain = params.get('domain') || '';

    const domains = await api('GET', '/domains');
    if (!root.isConnected) return;
    domainSelect.append(...domains.map(d => el('option', { value: d.name }, d.name)));
    if (domain && !domains.some(d => d.name === domain)) domainSelect.append(el('option', { value: domain }, domain));
    domainSelect.value = domain;

    async function load() {
      history.replaceState(null, '', `#/aliases${q({ domain })}`);
      const aliases = await api('GET', `/aliases${q({ domain })}`);
      if (!root.isConnected) return;
      if (aliases.length === 0) return emptyRow(tbody, 4, 'No aliases.');
      tbody.replaceChildren(...aliases.map(a => el('tr', { testid: 'alias-row', data: { source: a.source } },
        el('td', { testid: 'alias-source' }, a.source),
        el('td', { class: 'muted arrow', 'aria-hidden': 'true' }, '→'),
        el('td', { testid: 'alias-targets' }, ...(a.targets || []).map(t => el('span', { class: 'chip', testid: 'alias-target', data: { target: t } },
          el('span', {}, t),
          a.targets.length > 1 ? el('button', {
            type: 'button', class: 'chip-remove', testid: 'alias-remove-target', title: `Remove ${t} from ${a.source}`, 'aria-label': `Remove ${t}`,
            on: { click: e => busy(e.currentTarget, () => removeTarget(a.source, t)) },
          }, '×') : null))),
        el('td', { class: 'actions' }, el('button', {
          type: 'button', class: 'danger small', testid: 'alias-remove',
          on: { click: e => busy(e.currentTarget, () => remove(a.source)) },
        }, 'Remove')))));
    }

    async function remove(source) {
      if (!confirm(`Remove the alias ${source}?`)) return;
      await api('DELETE', `/aliases/${seg(source)}`);
      showNotice(`Alias ${source} removed.`);
      await load();
    }

    async function removeTarget(source, target) {
      await api('DELETE', `/aliases/${seg(source)}${q({ target })}`);
      showNotice(`${target} removed from ${source}.`);
      await load();
    }

    domainSelect.addEventListener('change', () => busy(null, () => { domain = domainSelect.value; clearMessages(); return load(); }));

    onSubmit(byId(root, 'alias-add-form'), async form => {
      const source = field(form, 'source').value.trim();
      const targets = field(form, 'targets').value.split(/[\s,;]+/).filter(t => t);
      if (targets.length === 0) throw new UserError('Give at least one target address.');
      await api('POST', '/aliases', { source, targets });
      form.reset();
      showNotice(`Alias ${source} → ${targets.join(', ')} added.`);
      await load();
    });

    await load();
  }

  // ---- Outbound queue ------------------------------------------------------------------

  /** How long ago an ISO time was: "12 s", "5 min", "3 h 20 min", "2 d 4 h". */
  function formatAge(t) {
    const ms = Date.now() - new Date(t).getTime();
    if (Number.isNaN(ms)) return '–';
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min`;
    const h = Math.floor(m / 60);
    if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
    const d = Math.floor(h / 24);
    return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
  }

  const RECIPIENT_BADGE = { queued: 'badge neutral', sent: 'badge good', failed: 'badge bad' };

  async function renderQueue(root, params) {
    const filter = byId(root, 'queue-filter-form');
    const tbody = $('tbody', byId(root, 'queue-table'));
    const showPage = pager(root, 'messages', offset => { state.offset = offset; return load(); });
    const state = {
      search: params.get('search') || '',
      offset: Math.max(0, parseInt(params.get('offset') || '0', 10) || 0),
    };
    field(filter, 'search').value = state.search;

    async function load() {
      history.replaceState(null, '', `#/queue${q({ search: state.search, offset: state.offset || '' })}`);
      const page = await api('GET', `/queue${q({ search: state.search, offset: state.offset, limit: PAGE_SIZE })}`);
      if (!root.isConnected) return;
      const items = page.items || [];
      if (items.length === 0 && state.offset > 0 && page.total > 0) {
        state.offset = Math.max(0, Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE); // the last page shrank
        return load();
      }
      showPage(state.offset, items.length, page.total);
      if (items.length === 0) return emptyRow(tbody, 7, state.search ? 'No queued message matches.' : 'The queue is empty.');
      tbody.replaceChildren(...items.map(row));
    }

    function row(m) {
      const action = (testid, text, fn, cls = 'secondary small') =>
        el('button', { type: 'button', class: cls, testid, on: { click: e => busy(e.currentTarget, fn) } }, text);
      const tr = el('tr', { testid: 'queue-row', data: { id: m.id }, class: m.held ? 'held' : '' },
        el('td', { class: 'nowrap' },
          el('span', { class: 'queue-id', testid: 'queue-id' }, m.id),
          m.held ? el('span', { class: 'badge warn', testid: 'queue-held' }, 'held') : null,
          el('div', { class: 'muted', testid: 'queue-size' }, formatBytes(m.size))),
        el('td', { class: 'nowrap', title: `${formatTime(m.created)} (${m.created})`, testid: 'queue-age' }, formatAge(m.created)),
        el('td', { testid: 'queue-sender' }, m.sender ? m.sender : el('span', { class: 'muted', title: 'null sender: a bounce' }, '<>'),
          m.account && m.account !== m.sender ? el('div', { class: 'muted', testid: 'queue-account' }, `by ${m.account}`) : null),
        el('td', { testid: 'queue-recipients' },
          ...(m.recipients || []).map(r => el('div', { class: 'rcpt', testid: 'queue-recipient', data: { address: r.address, state: r.state } },
            el('span', { testid: 'queue-recipient-address' }, r.address),
            el('span', { class: RECIPIENT_BADGE[r.state] || 'badge', testid: 'queue-recipient-state' }, r.state),
            r.reply ? el('span', { class: 'reply muted', title: formatTime(r.updated), testid: 'queue-recipient-reply' }, r.reply) : null)),
          m.lastError && !(m.recipients || []).some(r => r.reply === m.lastError)
            ? el('div', { class: 'reply bad', testid: 'queue-last-error' }, m.lastError) : null),
        el('td', { class: 'num', testid: 'queue-attempts' }, formatCount(m.attempts)),
        m.held
          ? el('td', { class: 'muted', testid: 'queue-next' }, 'on hold')
          : el('td', { class: 'nowrap', title: m.nextAttempt, testid: 'queue-next' }, formatTime(m.nextAttempt)),
        el('td', { class: 'actions' },
          action('queue-headers', 'Headers', () => toggleHeaders(tr, m)),
          action('queue-retry', 'Retry', () => retry(m)),
          m.held ? action('queue-release', 'Release', () => hold(m, false)) : action('queue-hold', 'Hold', () => hold(m, true)),
          action('queue-delete', 'Delete', () => remove(m), 'danger small')));
      return tr;
    }

    async function toggleHeaders(tr, m) {
      const next = tr.nextElementSibling;
      if (next && next.classList.contains('headers')) { next.remove(); return; }
      const entry = await api('GET', `/queue/${seg(m.id)}`);
      if (!tr.isConnected) return;
      tr.after(el('tr', { class: 'headers', testid: 'queue-headers-row', data: { id: m.id } },
        el('td', { colspan: 7 }, el('pre', { class: 'headers', testid: 'queue-headers-text' }, entry.headers || ''))));
    }

    async function retry(m) {
      await api('POST', `/queue/${seg(m.id)}/retry`);
      showNotice(`${m.id} queued for immediate retry.`);
      await load();
    }

    async function hold(m, on) {
      await api('POST', `/queue/${seg(m.id)}/${on ? 'hold' : 'release'}`);
      showNotice(on ? `${m.id} on hold: it is not tried until released.` : `${m.id} released.`);
      await load();
    }

    async function remove(m) {
      const to = (m.recipients || []).filter(r => r.state === 'queued').map(r => r.address);
      if (!confirm(`Delete the queued message ${m.id}${to.length ? ` to ${to.join(', ')}` : ''}? It will not be delivered, and the sender gets no bounce.`)) return;
      await api('DELETE', `/queue/${seg(m.id)}`);
      showNotice(`${m.id} deleted.`);
      await load();
    }

    byId(root, 'queue-retry-all').addEventListener('click', e => busy(e.currentTarget, async () => {
      const { count } = await api('POST', '/queue/retry');
      showNotice(`${formatCount(count)} message${count === 1 ? '' : 's'} queued for immediate retry.`);
      await load();
    }));
    byId(root, 'refresh').addEventListener('click', e => busy(e.currentTarget, () => { clearMessages(); return load(); }));
    onSubmit(filter, async form => {
      state.search = field(form, 'search').value.trim();
      state.offset = 0;
      clearMessages();
      await load();
    });

    await load();
  }

  // ---- Monitoring ----------------------------------------------------------------------

  const MONITORING_REFRESH_MS = 10_000;
  // The page refreshes itself, and every request keeps the session alive: refreshing stops after
  // the server's idle timeout without a key, pointer or wheel event (and while the tab is hidden),
  // so an unattended panel still signs out. Any activity resumes it.
  const MONITORING_IDLE_MS = 30 * 60_000;
  const RANGES = { '1h': 3600, '6h': 6 * 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400, '1y': 365 * 86400 };
  const STATUS_ORDER = ['CRITICAL', 'UNKNOWN', 'WARNING', 'OK']; // worst first, as the server ranks them (CheckResult.Rank)
  const STATUS_BADGE = { OK: 'badge good', WARNING: 'badge warn', CRITICAL: 'badge bad', UNKNOWN: 'badge unknown' };
  const statusRank = s => (STATUS_ORDER.includes(s) ? STATUS_ORDER.indexOf(s) : STATUS_ORDER.indexOf('UNKNOWN'));
  const byName = new Intl.Collator(undefined, { numeric: true }).compare;
  const statusBadge = status => el('span', { class: STATUS_BADGE[status] || STATUS_BADGE.UNKNOWN }, status);
  /** An actor as the server records it ("admin:alice", "token:deploy", "cli") in a sentence. */
  const actorName = actor => (actor.startsWith('admin:') ? actor.slice(6)
    : actor.startsWith('token:') ? `token ${actor.slice(6)}` : actor === 'cli' ? 'the command line' : actor);

  /** A series answer's points as the graphs take them: {t (ms), avg, min, max}, oldest first. */
  const toPoints = answer => (answer.points || [])
    .map(p => ({ t: Date.parse(p.time), avg: p.avg, min: p.min, max: p.max }))
    .filter(p => Number.isFinite(p.t) && typeof p.avg === 'number')
    .sort((a, b) => a.t - b.t);

  /**
   * A graph's card: title, an SVG, and a legend with each series' latest value (or the one
   * pointed at) and its min, average and max; draw() fills the SVG once the card is in the page.
   */
  function graphCard(graph) {
    const when = el('span', { class: 'muted when', testid: 'graph-when' });
    const values = [];
    const legend = graph.series.map((s, i) => {
      const stats = Graphs.summarize(s.points);
      const value = el('strong', { testid: 'graph-latest' }, stats ? Graphs.formatValue(graph.unit, stats.latest) : 'no data');
      values.push(value);
      return el('li', { testid: 'graph-legend-item', data: { series: s.name } },
        el('span', { class: `swatch s${i % Graphs.COLOURS}`, 'aria-hidden': 'true' }),
        el('span', {}, s.label),
        value,
        stats ? el('span', { class: 'muted stats' }, ['min', 'avg', 'max'].map(k => `${k} ${Graphs.formatValue(graph.unit, stats[k])}`).join(' · ')) : null);
    });
    const latest = values.map(v => v.textContent);
    // A graph whose lines stopped says since when: its legend's values are that old.
    const last = Math.max(...graph.series.map(s => (s.points.length ? s.points[s.points.length - 1].t : -Infinity)));
    const since = Number.isFinite(last) && graph.to - last > Math.max(3 * graph.step * 1000, 60_000) ? `no data since ${formatTime(last / 1000)}` : '';
    when.textContent = since;
    const picture = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    picture.setAttribute('role', 'img');
    picture.setAttribute('aria-label', graph.title);
    const card = el('article', { class: 'graph', testid: 'monitoring-graph', data: { family: graph.families.join(' '), node: graph.node, range: graph.range } },
      el('header', {}, el('h3', { title: graph.families.join(', ') }, graph.title), when),
      picture,
      el('ul', { class: 'legend', testid: 'graph-legend' }, legend));
    const draw = () => Graphs.draw(picture, graph, (time, points) => {
      when.textContent = time === null ? since : formatTime(time / 1000);
      values.forEach((v, i) => { v.textContent = time === null ? latest[i] : (points[i] ? Graphs.formatValue(graph.unit, points[i].avg) : '–'); });
    });
    return { card, draw };
  }

  async function renderMonitoring(root, params) {
    const form = byId(root, 'monitoring-graph-form');
    const nodeSelect = field(form, 'node');
    const rangeSelect = field(form, 'range');
    const graphsBox = byId(root, 'monitoring-graphs');
    const updated = byId(root, 'monitoring-updated');
    const state = { node: params.get('node') || '', range: Object.hasOwn(RANGES, params.get('range')) ? params.get('range') : '1h' };
    rangeSelect.value = state.range;
    let graphs = [];        // {card, draw} of the graphs shown, drawn again at another width
    let generation = 0;     // a load answered after a newer one started is dropped
    let timer = 0;
    let scheduled = false;  // a refresh is due or running
    let failed = false;     // the last load failed: the next that works clears its error
    let lastActivity = Date.now();
    const stop = new AbortController(); // removes the listeners on document and window once the page is left

    async function load() {
      const gen = ++generation;
      const [checks, alerts, nodes] = await Promise.all([
        api('GET', '/monitoring/checks'), api('GET', '/monitoring/alerts'), api('GET', '/monitoring/nodes')]);
      if (!root.isConnected || gen !== generation) return;
      showChecks(checks.checks || []);
      showAlerts(alerts.alerts || []);
      const node = chooseNode(nodes.nodes || []);
      history.replaceState(null, '', `#/monitoring${q({ node: state.node, range: state.range === '1h' ? '' : state.range })}`);
      const shown = node ? await graphCards(node) : [];
      if (!root.isConnected || gen !== generation) return;
      graphs = shown;
      graphsBox.replaceChildren(...(graphs.length ? graphs.map(g => g.card)
        : [el('p', { class: 'muted', testid: 'monitoring-no-graphs' }, 'No node has recorded any metric yet.')]));
      for (const g of graphs) g.draw();
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${MONITORING_REFRESH_MS / 1000} s.`;
      if (failed) { failed = false; errorBox.hidden = true; }
    }

    /** The node's graphs over the chosen range, one request per series. */
    async function graphCards(node) {
      const graphs = Graphs.plan(node.metrics || []).map(g => ({ ...g, node: node.name, range: state.range }));
      const answers = await Promise.all(graphs.flatMap(g => g.series).map(s =>
        api('GET', `/monitoring/series${q({ node: node.name, metric: s.name, range: state.range })}`)));
      let k = 0;
      return graphs.map(g => {
        for (const s of g.series) {
          const answer = answers[k++] || {};
          s.points = toPoints(answer);
          if (!Number.isFinite(g.from)) g.from = Date.parse(answer.from);
          if (!Number.isFinite(g.to)) g.to = Date.parse(answer.to);
          if (!(g.step > 0)) g.step = answer.step;
        }
        if (!Number.isFinite(g.to)) g.to = Date.now();
        if (!(g.from < g.to)) g.from = g.to - RANGES[state.range] * 1000;
        if (!(g.step > 0)) g.step = 60;
        return graphCard(g);
      });
    }

    function chooseNode(nodes) {
      const names = nodes.map(n => n.name);
      if (!names.includes(state.node)) state.node = names[0] || '';
      if ([...nodeSelect.options].map(o => o.value).join('\n') !== names.join('\n')) {
        nodeSelect.replaceChildren(...names.map(n => el('option', { value: n }, n)));
      }
      nodeSelect.value = state.node;
      nodeSelect.disabled = names.length === 0;
      const node = nodes.find(n => n.name === state.node) || null;
      const sample = byId(root, 'monitoring-last-sample');
      sample.textContent = !node ? '' : node.lastSample ? `last sample ${formatAge(node.lastSample)} ago` : 'no sample yet';
      sample.title = node && node.lastSample ? formatTime(node.lastSample) : '';
      sample.className = node && Date.now() - Date.parse(node.lastSample) > 5 * 60_000 ? 'bad' : 'muted';
      return node;
    }

    function showChecks(checks) {
      const tbody = $('tbody', byId(root, 'checks-table'));
      checks.sort((a, b) => statusRank(a.status) - statusRank(b.status) || byName(a.node, b.node) || byName(a.name, b.name));
      byId(root, 'checks-summary').replaceChildren(...STATUS_ORDER
        .map(s => [s, checks.filter(c => statusRank(c.status) === statusRank(s)).length])
        .filter(([, n]) => n > 0)
        .map(([s, n]) => el('span', { class: STATUS_BADGE[s], testid: 'checks-count', data: { status: s } }, `${n} ${s}`)));
      if (checks.length === 0) return emptyRow(tbody, 5, 'No check has run yet.');
      tbody.replaceChildren(...checks.map(c => el('tr', { testid: 'check-row', data: { node: c.node, name: c.name } },
        el('td', { testid: 'check-node' }, c.node),
        el('td', { testid: 'check-name' }, c.name),
        el('td', { testid: 'check-status' }, statusBadge(c.status)),
        el('td', { class: 'output', testid: 'check-output' }, c.output || ''),
        el('td', { class: 'nowrap', title: formatTime(c.time), testid: 'check-age' }, formatAge(c.time)))));
    }

    function showAlerts(alerts) {
      const tbody = $('tbody', byId(root, 'alerts-table'));
      if (alerts.length === 0) return emptyRow(tbody, 5, 'No open alerts, and none closed in the last 24 hours.');
      tbody.replaceChildren(...alerts.map(a => el('tr', {
        testid: 'alert-row', data: { id: a.id, node: a.node, check: a.check, state: a.closed ? 'closed' : 'open' }, class: a.closed ? 'closed' : '',
      },
      el('td', { testid: 'alert-status' }, statusBadge(a.status)),
      el('td', {},
        el('span', { testid: 'alert-check' }, el('strong', {}, a.check), ` on ${a.node}`),
        a.escalated ? el('span', { class: 'badge bad', testid: 'alert-escalated', title: 'notified further up' }, 'escalated') : null,
        a.flapping ? el('span', { class: 'badge warn', testid: 'alert-flapping', title: 'changing state often' }, 'flapping') : null),
      el('td', { class: 'nowrap', title: `changed ${formatTime(a.changed)}`, testid: 'alert-opened' }, formatTime(a.opened),
        el('div', { class: 'muted' }, a.closed ? `closed ${formatTime(a.closed)}` : `open for ${formatAge(a.opened)}`)),
      el('td', { class: 'output', testid: 'alert-output' }, a.output || ''),
      el('td', { class: 'actions' }, a.ackedBy
        ? el('span', { class: 'muted', title: `${a.ackedBy}, ${formatTime(a.ackedAt)}`, testid: 'alert-acked' }, `acknowledged by ${actorName(a.ackedBy)}`)
        : a.closed ? null
          : el('button', { type: 'button', class: 'secondary small', testid: 'alert-ack', on: { click: e => busy(e.currentTarget, () => acknowledge(a)) } }, 'Acknowledge')))));
    }

    // The whole page loads again after an acknowledgement, also when it failed (the alert may
    // have closed meanwhile): a refresh already under way would show the alerts from before.
    async function acknowledge(a) {
      try {
        await api('POST', `/monitoring/alerts/${seg(a.id)}/ack`);
        showNotice(`The ${a.check} alert on ${a.node} is acknowledged.`);
      } finally {
        if (root.isConnected) await load();
      }
    }

    // Refreshing: the next load 10 s after the last ended; none while the tab is hidden or nobody is there.
    function refreshIn(ms) {
      clearTimeout(timer);
      scheduled = true;
      timer = setTimeout(refresh, ms);
    }

    async function refresh() {
      if (!root.isConnected) { stop.abort(); return; }
      if (document.hidden || Date.now() - lastActivity > MONITORING_IDLE_MS) {
        scheduled = false;
        if (!document.hidden) updated.textContent = 'Refreshing paused after 30 minutes without activity; move the pointer or press a key to resume.';
        return;
      }
      try {
        await load();
      } catch (e) {
        if (e.signedOut) return;
        failed = true;
        showError(e);
      }
      if (root.isConnected) refreshIn(MONITORING_REFRESH_MS); else stop.abort();
    }

    const wake = () => {
      lastActivity = Date.now();
      if (!root.isConnected) stop.abort();
      else if (!scheduled && !document.hidden) refreshIn(0);
    };
    for (const type of ['pointermove', 'pointerdown', 'keydown', 'wheel', 'visibilitychange']) {
      document.addEventListener(type, wake, { passive: true, signal: stop.signal });
    }
    let resizing = 0;
    window.addEventListener('resize', () => {
      if (!root.isConnected) { stop.abort(); return; }
      cancelAnimationFrame(resizing);
      resizing = requestAnimationFrame(() => { for (const g of graphs) g.draw(); });
    }, { signal: stop.signal });

    const reload = () => { clearMessages(); updated.textContent = 'Loading…'; refreshIn(0); };
    nodeSelect.addEventListener('change', () => { state.node = nodeSelect.value; reload(); });
    rangeSelect.addEventListener('change', () => { state.range = rangeSelect.value; reload(); });

    try {
      await load();
    } catch (e) {
      failed = true;
      throw e;
    } finally {
      if (root.isConnected) refreshIn(MONITORING_REFRESH_MS);
    }
  }

  // ---- Import --------------------------------------------------------------------------

  function renderImport(root) {
    const form = byId(root, 'import-form');
    const text = field(form, 'csv');
    field(form, 'file').addEventListener('change', async event => {
      const file = event.target.files[0];
      if (!file) return;
      try {
        text.value = await file.text();
      } catch (e) {
        showError(new UserError(`Cannot read ${file.name}: ${e.message}`));
      }
    });
    onSubmit(form, async () => {
      let csv = text.value;
      const file = field(form, 'file').files[0];
      if (!csv.trim() && file) csv = await file.text();
      if (!csv.trim()) throw new UserError('Choose a CSV file or paste its lines first.');
      clearMessages();
      const { job } = await api('POST', '/mailboxes/import', csv, { contentType: 'text/csv' });
      const result = await followJob(byId(root, 'job'), job,
        j => `Done: ${formatCount(j.done)} mailbox${j.done === 1 ? '' : 'es'} created.`,
        'nothing was created. Correct the lines listed and import the whole file again.');
      if (result && result.state === 'done') form.reset();
    });
  }

  // ---- Provisioning and audit ----------------------------------------------------------

  function requestRows(tbody, requests, empty) {
    if (!requests || requests.length === 0) return emptyRow(tbody, 7, empty);
    tbody.replaceChildren(...requests.map(r => el('tr', { testid: 'request-row', data: { seq: r.seq }, class: r.error ? 'failed' : '' },
      el('td', { class: 'num', testid: 'request-seq' }, r.seq),
      el('td', { class: 'nowrap', title: isoTime(r.time), testid: 'request-time' }, formatTime(r.time)),
      el('td', { testid: 'request-actor' }, r.actor),
      el('td', { testid: 'request-kind' }, r.kind),
      el('td', { testid: 'request-target' }, r.target),
      el('td', { testid: 'request-summary' }, r.summary),
      el('td', { testid: 'request-error', class: r.error ? 'bad' : '' }, r.error || ''))));
  }

  async function renderProvisioning(root) {
    async function load() {
      const p = await api('GET', '/provisioning?limit=20');
      if (!root.isConnected) return;
      byId(root, 'provisioning-lastseq').textContent = `request ${formatCount(p.lastSeq)}`;
      nodeRows($('tbody', byId(root, 'provisioning-nodes')), p.nodes, p.lastSeq);
      requestRows($('tbody', byId(root, 'provisioning-recent')), p.recent, 'No requests yet.');
    }
    byId(root, 'refresh').addEventListener('click', e => busy(e.currentTarget, load));
    await load();
  }

  async function renderAudit(root, params) {
    const form = byId(root, 'audit-filter-form');
    const tbody = $('tbody', byId(root, 'audit-table'));
    const showPage = pager(root, 'entries', offset => { state.offset = offset; return load(); });
    const state = {
      search: params.get('search') || '',
      offset: Math.max(0, parseInt(params.get('offset') || '0', 10) || 0),
    };
    field(form, 'search').value = state.search;

    async function load() {
      history.replaceState(null, '', `#/audit${q({ search: state.search, offset: state.offset || '' })}`);
      const page = await api('GET', `/audit${q({ offset: state.offset, limit: PAGE_SIZE, search: state.search })}`);
      if (!root.isConnected) return;
      const items = page.items || [];
      showPage(state.offset, items.length, page.total);
      requestRows(tbody, items, state.search ? 'No entry matches.' : 'The log is empty.');
    }

    onSubmit(form, async () => {
      state.search = field(form, 'search').value.trim();
      state.offset = 0;
      clearMessages();
      await load();
    });
    await load();
  }

  // ---- Security ------------------------------------------------------------------------

  async function renderSecurity(root) {
    const off = byId(root, 'totp-off');
    const setup = byId(root, 'totp-setup');
    const disableForm = byId(root, 'totp-disable-form');

    function show() {
      byId(root, 'totp-state').textContent = session.totp ? 'on' : 'off';
      byId(root, 'totp-state').className = session.totp ? 'good' : 'muted';
      off.hidden = session.totp || !setup.hidden;
      disableForm.hidden = !session.totp;
    }

    signedIn(await api('GET', '/session'));
    if (!root.isConnected) return;
    show();

    byId(root, 'totp-enable').addEventListener('click', e => busy(e.currentTarget, async () => {
      const { secret, uri } = await api('POST', '/session/totp');
      byId(root, 'totp-secret').textContent = (secret || '').replace(/(.{4})(?=.)/g, '$1 ');
      const link = byId(root, 'totp-uri');
      link.textContent = uri || '';
      if (/^otpauth:/i.test(uri || '')) link.href = uri; else link.removeAttribute('href');
      setup.hidden = false;
      show();
      field(byId(root, 'totp-confirm-form'), 'code').focus();
    }));

    onSubmit(byId(root, 'totp-confirm-form'), async form => {
      await api('POST', '/session/totp/confirm', { code: field(form, 'code').value.trim() });
      form.reset();
      session.totp = true;
      setup.hidden = true;
      show();
      showNotice('TOTP is on: signing in now asks for a code.');
    });

    onSubmit(disableForm, async form => {
      await api('DELETE', '/session/totp', { code: field(form, 'code').value.trim() });
      form.reset();
      session.totp = false;
      show();
      showNotice('TOTP is off.');
    });
  }

  start();
})();
