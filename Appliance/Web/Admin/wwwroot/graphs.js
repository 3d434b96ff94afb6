// Time-series graphs for the admin panel's Monitoring page: which series share a graph, the
// unit a metric's name implies, round axis ticks on the browser's local clock, and the SVG.
//
// Implementation notes
// - A series name is a family and optional labels in Prometheus notation
//   (disk_used_percent{fs="/var"}); the unit comes from the family's suffix (_percent,
//   _bytes_per_second, _seconds, _per_minute, …), so a new metric needs no change here.
// - Elements are made with createElementNS and text nodes: a series name is never markup.
//   Colours are classes (.s0 … .s7 in admin.css), not style attributes, which the CSP forbids.
// - Loaded before admin.js; the one global is Graphs.
'use strict';

const Graphs = (() => {
  const byName = new Intl.Collator(undefined, { numeric: true }).compare;
  const COLOURS = 8;
  const HEIGHT = 190;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  /**
   * The graphs, in page order. A graph takes the families its pattern matches; the pattern's
   * first group (or part(match)) names a family's lines when several share the graph. A family
   * no graph takes gets one of its own after these, titled with its name.
   */
  const GRAPHS = [
    { title: 'CPU', match: /^cpu_percent$/ },
    { title: 'Load', match: /^load(1|5|15)$/, part: m => `${m[1]} min` },
    { title: 'Memory used', match: /^memory_used_percent$/ },
    { title: 'Disk used', match: /^disk_used_percent$/ },
    { title: 'Disk I/O', match: /^disk_(read|write)_bytes_per_second$/ },
    { title: 'Network', match: /^net_(receive|transmit)_bytes_per_second$/ },
    { title: 'SMTP per minute', match: /^smtp_(\w+?)_per_minute$/ },
    { title: 'Queued messages', match: /^queue_messages$/ },
    { title: 'Oldest queued message', match: /^queue_oldest_seconds$/ },
    { title: 'Sessions', match: /^(imap|pop3)_sessions$/, part: m => m[1].toUpperCase() },
    { title: 'Failed logins per minute', match: /^login_failures_per_minute$/ },
    { title: 'Replication lag', match: /^replication_lag(?:_\w+)?$/ },
    // Then the other figures of the collector, and last any family not named here.
    { title: 'CPU waiting for I/O', match: /^cpu_iowait_percent$/ },
    { title: 'Disk busy', match: /^disk_busy_percent$/ },
    { title: 'Inodes used', match: /^disk_inodes_used_percent$/ },
    { title: 'Disk space', match: /^disk_(used|total)_bytes$/ },
    { title: 'Memory', match: /^memory_(available|total)_bytes$/ },
    { title: 'Swap used', match: /^swap_used_bytes$/ },
    { title: 'Network errors', match: /^net_(receive|transmit)_errors_per_second$/ },
  ];

  const familyOf = series => (series.includes('{') ? series.slice(0, series.indexOf('{')) : series);

  /** The label values of a series name, in order: disk_used_percent{fs="/var"} → ["/var"]. */
  function labelValues(series) {
    const at = series.indexOf('{');
    if (at < 0) return [];
    return [...series.slice(at).matchAll(/\w+="((?:[^"\\]|\\.)*)"/g)]
      .map(m => m[1].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c)));
  }

  /**
   * A node's series names grouped into graphs, in page order:
   * [{title, families, unit, series: [{name, family, label}]}], each graph's series by family then labels.
   */
  function plan(metrics) {
    const known = GRAPHS.map(g => ({ ...g, series: [] }));
    const own = new Map();
    for (const name of metrics) {
      const family = familyOf(name);
      let graph = null;
      let part = '';
      for (const g of known) {
        const m = g.match.exec(family);
        if (!m) continue;
        graph = g;
        part = g.part ? g.part(m) : (m[1] || '');
        break;
      }
      if (!graph) {
        if (!own.has(family)) own.set(family, { title: family, series: [] });
        graph = own.get(family);
      }
      const values = labelValues(name).join(', ');
      const label = part && values ? `${part} (${values})` : part || values || name;
      graph.series.push({ name, family, label });
    }
    return [...known, ...[...own.values()].sort((a, b) => byName(a.title, b.title))]
      .filter(g => g.series.length > 0)
      .map(g => {
        g.series.sort((a, b) => byName(a.family, b.family) || byName(a.name, b.name));
        const families = [...new Set(g.series.map(s => s.family))];
        return { title: g.title, families, unit: unitOf(families[0]), series: g.series };
      });
  }

  // ---- Units ---------------------------------------------------------------------------

  const BYTES = [[' GB', 2 ** 30], [' MB', 2 ** 20], [' KB', 2 ** 10], [' B', 1]];
  const COUNT = [['M', 1e6], ['k', 1e3], ['', 1]];
  const UNIT = {
    percent: { scales: [['%', 1]], max: 100 },
    bytes: { scales: BYTES },
    bytesPerSecond: { scales: BYTES.map(([s, d]) => [`${s}/s`, d]) },
    seconds: { scales: [[' d', 86400], [' h', 3600], [' min', 60], [' s', 1]] },
    perSecond: { scales: COUNT.map(([s, d]) => [`${s}/s`, d]) },
    perMinute: { scales: COUNT.map(([s, d]) => [`${s}/min`, d]) },
    count: { scales: COUNT },
  };

  function unitOf(family) {
    if (/_percent$/.test(family)) return UNIT.percent;
    if (/_bytes_per_second$/.test(family)) return UNIT.bytesPerSecond;
    if (/_bytes$/.test(family)) return UNIT.bytes;
    if (/_seconds$/.test(family)) return UNIT.seconds;
    if (/_per_second$/.test(family)) return UNIT.perSecond;
    if (/_per_minute$/.test(family)) return UNIT.perMinute;
    return UNIT.count;
  }

  /** The scale to write values up to max in: [suffix, divisor]. */
  const scaleFor = (unit, max) => unit.scales.find(([, d]) => Math.abs(max) >= d) || unit.scales[unit.scales.length - 1];

  /** A value for reading, in its own scale with about three significant digits: 1536 bytes/s → "1.5 KB/s". */
  function formatValue(unit, v) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
    const [suffix, d] = scaleFor(unit, v);
    const x = v / d;
    const digits = Math.abs(x) >= 100 || Number.isInteger(x) ? 0 : Math.abs(x) >= 10 ? 1 : 2;
    return `${Number(x.toFixed(digits))}${suffix}`;
  }

  /** A series' latest value and its min, average and max over the range; null without points. */
  function summarize(points) {
    if (points.length === 0) return null;
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    for (const p of points) {
      min = Math.min(min, p.min ?? p.avg);
      max = Math.max(max, p.max ?? p.avg);
      sum += p.avg;
    }
    return { latest: points[points.length - 1].avg, min, avg: sum / points.length, max };
  }

  // ---- Axes ----------------------------------------------------------------------------

  /** A round step near span/count: 1, 2, 2.5 or 5 times a power of ten. */
  function niceStep(span, count) {
    const raw = span / count;
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const f = raw / magnitude;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * magnitude;
  }

  /** The y axis for values in [lo, hi]: {lo, hi, ticks: [{value, label}]}, round ticks in one scale, from 0 up. */
  function valueAxis(unit, lo, hi) {
    lo = Math.min(0, lo);
    if (unit.max && hi <= unit.max) hi = unit.max;
    const [suffix, d] = scaleFor(unit, Math.max(Math.abs(lo), Math.abs(hi)));
    const bottom = lo / d;
    const flat = hi / d <= bottom; // all equal (all zero): 0 and 1 of the unit
    const top = flat ? bottom + 1 : hi / d;
    const step = niceStep(top - bottom, flat ? 1 : 4);
    const first = Math.floor(bottom / step) * step;
    const last = Math.ceil(top / step - 1e-9) * step;
    const decimals = (String(Number(step.toPrecision(6))).split('.')[1] || '').length;
    const ticks = [];
    for (let v = first; v <= last + step / 2; v += step) ticks.push({ value: v * d, label: `${Number(v.toFixed(decimals))}${suffix}` });
    return { lo: first * d, hi: last * d, ticks };
  }

  const MINUTE = 60_000;
  const HOUR = 60 * MINUTE;
  const DAY = 24 * HOUR;
  const TIME_STEPS = [MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
    HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];

  /** At most `most` ticks between two times (ms), on round moments of the local clock, labelled for it. */
  function timeAxis(from, to, most) {
    const step = TIME_STEPS.find(s => (to - from) / s <= most);
    const ticks = [];
    const d = new Date(from);
    d.setSeconds(0, 0);
    if (!step) { // a year: the first of every month, or of every few
      const months = Math.ceil((to - from) / (30.44 * DAY) / most);
      d.setDate(1);
      d.setHours(0, 0);
      d.setMonth(d.getMonth() + 1);
      d.setMonth(Math.ceil(d.getMonth() / months) * months); // January, March, … for every 2 months
      for (; d.getTime() <= to; d.setMonth(d.getMonth() + months)) {
        ticks.push({ time: d.getTime(), label: d.toLocaleDateString(undefined, d.getMonth() === 0 ? { month: 'short', year: 'numeric' } : { month: 'short' }) });
      }
      return ticks;
    }
    if (step < DAY) {
      // Counted on the clock from local midnight, so ticks sit on :00, :15, 03:00, …
      const minutes = step / MINUTE;
      const since = d.getHours() * 60 + d.getMinutes() + (d.getTime() < from ? 1 : 0);
      d.setHours(0, Math.ceil(since / minutes) * minutes);
      for (; d.getTime() <= to; d.setMinutes(d.getMinutes() + minutes)) {
        const midnight = d.getHours() === 0 && d.getMinutes() === 0;
        ticks.push({
          time: d.getTime(),
          label: midnight && to - from > 3 * HOUR
            ? d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })
            : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }),
        });
      }
      return ticks;
    }
    d.setHours(0, 0);
    if (d.getTime() < from) d.setDate(d.getDate() + 1);
    for (; d.getTime() <= to; d.setDate(d.getDate() + step / DAY)) {
      ticks.push({ time: d.getTime(), label: d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' }) });
    }
    return ticks;
  }

  // ---- Drawing -------------------------------------------------------------------------

  /** svg('path', {testid, data, ...attributes}, ...children): an SVG element; strings become text nodes. */
  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null) continue;
      if (k === 'testid') node.setAttribute('data-testid', v);
      else if (k === 'data') for (const [dk, dv] of Object.entries(v)) node.setAttribute(`data-${dk}`, dv);
      else node.setAttribute(k, String(v));
    }
    node.append(...children);
    return node;
  }

  function nearest(points, t) {
    let a = 0;
    let b = points.length - 1;
    if (b < 0) return null;
    while (b - a > 1) {
      const m = (a + b) >> 1;
      if (points[m].t < t) a = m; else b = m;
    }
    return Math.abs(points[a].t - t) <= Math.abs(points[b].t - t) ? points[a] : points[b];
  }

  /**
   * Draws a graph into an <svg> already in the page (its width is measured):
   * graph = {unit, from, to (ms), step (s), series: [{name, points: [{t (ms), avg, min?, max?}] oldest first]}}.
   * Gridlines with tick labels, a min–max band and an average line per series (colour i in
   * order), broken where points are missing; an isolated point is a dot. Pointing at the graph
   * calls onPoint(time, [point or null per series]), and onPoint(null) when the pointer leaves.
   */
  function draw(element, graph, onPoint) {
    const width = Math.max(240, Math.round(element.getBoundingClientRect().width) || 480);
    const { from, to, step } = graph;
    const all = graph.series.flatMap(s => s.points);
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of all) {
      lo = Math.min(lo, p.min ?? p.avg);
      hi = Math.max(hi, p.max ?? p.avg);
    }
    const yAxis = valueAxis(graph.unit, all.length ? lo : 0, all.length ? hi : 0);
    const left = 10 + 6.5 * Math.max(...yAxis.ticks.map(t => t.label.length));
    const right = width - 12;
    const top = 8;
    const bottom = HEIGHT - 22;
    const x = t => left + ((t - from) / Math.max(1, to - from)) * (right - left);
    const y = v => bottom - ((v - yAxis.lo) / (yAxis.hi - yAxis.lo)) * (bottom - top);
    const px = n => n.toFixed(1);
    const line = (points, value, first = 'M') => points.map((p, k) => `${k ? 'L' : first}${px(x(p.t))} ${px(y(value(p)))}`).join('');

    const grid = svg('g', { class: 'grid' });
    for (const t of yAxis.ticks) {
      grid.append(
        svg('line', { x1: left, x2: right, y1: px(y(t.value)), y2: px(y(t.value)) }),
        svg('text', { x: left - 6, y: px(y(t.value)), 'text-anchor': 'end', 'dominant-baseline': 'middle' }, t.label));
    }
    for (const t of timeAxis(from, to, Math.max(2, Math.floor((right - left) / 75)))) {
      grid.append(
        svg('line', { class: 'vertical', x1: px(x(t.time)), x2: px(x(t.time)), y1: top, y2: bottom }),
        svg('text', { x: px(x(t.time)), y: bottom + 15, 'text-anchor': 'middle' }, t.label));
    }

    const bands = svg('g');
    const lines = svg('g');
    const gap = 2.5 * step * 1000; // two points further apart than this are not joined
    graph.series.forEach((s, i) => {
      const colour = `s${i % COLOURS}`;
      const runs = [];
      for (const p of s.points) {
        const run = runs[runs.length - 1];
        if (run && p.t - run[run.length - 1].t <= gap) run.push(p); else runs.push([p]);
      }
      const d = runs.map(run => line(run, p => p.avg)).join('');
      lines.append(svg('path', { class: `line ${colour}`, d: d || 'M0 0', testid: 'graph-line', data: { series: s.name, points: s.points.length } }));
      for (const run of runs) {
        if (run.length === 1) {
          lines.append(svg('circle', { class: `dot ${colour}`, cx: px(x(run[0].t)), cy: px(y(run[0].avg)), r: 2.5 }));
        } else if (run.some(p => (p.max ?? p.avg) > (p.min ?? p.avg))) {
          const band = line(run, p => p.max ?? p.avg) + line(run.slice().reverse(), p => p.min ?? p.avg, 'L');
          bands.append(svg('path', { class: `band ${colour}`, d: `${band}Z` }));
        }
      }
    });

    const guide = svg('line', { class: 'guide', y1: top, y2: bottom, visibility: 'hidden' });
    const overlay = svg('rect', { class: 'hover', x: left, y: top, width: Math.max(0, right - left), height: bottom - top });
    element.setAttribute('viewBox', `0 0 ${width} ${HEIGHT}`);
    element.setAttribute('height', HEIGHT);
    element.replaceChildren(grid, svg('path', { class: 'axis', d: `M${left} ${top}V${bottom}H${right}` }), bands, lines, guide, overlay,
      ...(all.length ? [] : [svg('text', { class: 'nodata', x: (left + right) / 2, y: (top + bottom) / 2 }, 'no data yet')]));

    overlay.addEventListener('pointermove', event => {
      const box = element.getBoundingClientRect();
      const t = from + (((event.clientX - box.left) * (width / box.width) - left) / (right - left)) * (to - from);
      const points = graph.series.map(s => {
        const p = nearest(s.points, t);
        return p && Math.abs(p.t - t) <= gap / 2 ? p : null;
      });
      const closest = points.reduce((best, p) => (p && (!best || Math.abs(p.t - t) < Math.abs(best.t - t)) ? p : best), null);
      if (!closest) {
        guide.setAttribute('visibility', 'hidden');
        onPoint(null);
        return;
      }
      guide.setAttribute('x1', px(x(closest.t)));
      guide.setAttribute('x2', px(x(closest.t)));
      guide.setAttribute('visibility', 'visible');
      onPoint(closest.t, points);
    });
    overlay.addEventListener('pointerleave', () => {
      guide.setAttribute('visibility', 'hidden');
      onPoint(null);
    });
  }

  return { plan, draw, formatValue, summarize, COLOURS };
})();
