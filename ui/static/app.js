// Chorus web page. It reads this agent's HTTP API (the same one every
// client uses) and follows it live: each thing on screen is one blocking
// query (?index=N&wait=5m) that the agent answers when its answer changes.
// Errors are retried with exponential backoff; a 403 asks for an ACL token,
// which is kept in sessionStorage only and sent as X-Consul-Token.
//
// Everything from the catalog is untrusted text: it reaches the page only
// through textContent and attribute values, never as markup.
'use strict';

(() => {
  const WAIT = '5m';
  const TOKEN_KEY = 'chorus.token';
  // A blocking query that comes back at once with an unchanged index is
  // not repeated sooner than this.
  const MIN_LOOP_MS = 1000;
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  // The service list's counts come from plain reads per service (see
  // summaries); every RESYNC_MS, or RESYNC_PER_SERVICE_MS per service if
  // that is longer, they are all read again.
  const RESYNC_MS = 30000;
  const RESYNC_PER_SERVICE_MS = 150;
  // During a round of reads the list is drawn at most this often.
  const ROUND_DRAW_MS = 150;
  const MEMBER_STATUS = ['none', 'alive', 'leaving', 'left', 'failed'];
  const POLICY_ALIASES = {
    '': 'random', random: 'random', 'round-robin': 'round-robin', round_robin: 'round-robin',
    roundrobin: 'round-robin', 'least-loaded': 'least-loaded', least_loaded: 'least-loaded',
    nearest: 'nearest', hash: 'hash',
  };
  const HEALTH_RANK = { passing: 0, warning: 1, critical: 2, maintenance: 3 };
  const rank = (st) => (Object.hasOwn(HEALTH_RANK, st) ? HEALTH_RANK[st] : HEALTH_RANK.critical);

  const $ = (id) => document.getElementById(id);

  // ---- DOM -------------------------------------------------------------

  // el builds an element. props: class, text, and attributes; children
  // are nodes or strings (as text).
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function badge(status, text) {
    return el('span', { class: 'badge', 'data-status': status }, text || status);
  }

  // chips lists short values (tags, meta); inline ones are spans, for use
  // inside links.
  function chips(values, cls, inline) {
    const [list, item] = inline ? ['span', 'span'] : ['ul', 'li'];
    return el(list, { class: 'chips' + (cls ? ' ' + cls : '') }, values.map((v) => el(item, null, v)));
  }

  // ---- token -----------------------------------------------------------

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
  }

  function setToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch { /* storage disabled: the token lives as long as this page */ }
  }

  // ---- API -------------------------------------------------------------

  class APIError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // get reads path with params and returns the decoded body and the
  // X-Consul-Index as sent (a uint64 in decimal; '' when absent). Non-2xx answers throw APIError with
  // the agent's {"error": …} message.
  async function get(path, params, signal) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
    }
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (token) headers['X-Consul-Token'] = token;
    const resp = await fetch(url, { headers, signal, cache: 'no-store', credentials: 'omit' });
    if (!resp.ok) {
      let msg = `${resp.status} ${resp.statusText}`.trim();
      try {
        const b = await resp.json();
        if (b && typeof b.error === 'string') msg = b.error;
      } catch { /* not JSON: keep the status line */ }
      throw new APIError(resp.status, msg);
    }
    const index = /^[1-9]\d*$/.test(resp.headers.get('X-Consul-Index') || '') ? resp.headers.get('X-Consul-Index') : '';
    return { body: await resp.json(), index };
  }

  const svcPath = (base, name) => base + encodeURIComponent(name);

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      if (signal.aborted) { resolve(); return; }
      const t = setTimeout(done, ms);
      function done() { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); }
      signal.addEventListener('abort', done);
    });
  }

  function backoff(failures) {
    const d = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(failures - 1, 10));
    return d / 2 + Math.random() * d / 2;
  }

  // ---- connection state ------------------------------------------------

  // conn shows one line for every watch together: live, reconnecting (with
  // the first failing watch's error) or waiting for a token.
  const conn = {
    failing: new Map(),
    locked: false,
    paused: false,
    ok(key) {
      this.failing.delete(key);
      this.render();
    },
    fail(key, err, delay) {
      this.failing.set(key, { err, delay });
      this.render();
    },
    render() {
      const p = $('conn');
      let stateName = 'live';
      let text = 'Live';
      if (this.locked) {
        stateName = 'locked';
        text = 'Token needed';
      } else if (this.paused) {
        stateName = 'paused';
        text = 'Paused while hidden';
      } else if (this.failing.size > 0) {
        const [key, f] = this.failing.entries().next().value;
        stateName = 'error';
        text = `Reconnecting (${key}: ${f.err.message}) — retry in ${Math.ceil(f.delay / 1000)} s`;
      }
      if (p.textContent !== text) p.textContent = text;
      p.dataset.state = stateName;
    },
  };

  // ---- watches ---------------------------------------------------------

  let session = null; // {ctrl: AbortController, watches: Map}

  // watch follows one read: first a plain read, then blocking reads with
  // the last X-Consul-Index, calling onData with every changed answer. An
  // index that goes backwards (the agent restarted, or answered for a new
  // question) is taken as it is: the answer is current either way. With
  // once set it stops after the first good answer. Errors back off and
  // start again with a plain read; a 403 stops everything and asks for a
  // token.
  function watch(key, path, params, onData, once) {
    const ctrl = new AbortController();
    const s = session;
    s.watches.get(key)?.abort();
    s.watches.set(key, ctrl);
    const signal = ctrl.signal;
    (async () => {
      let index = '';
      let failures = 0;
      while (!signal.aborted && !s.ctrl.signal.aborted) {
        const sent = index;
        const started = Date.now();
        try {
          const q = { ...params };
          if (sent && !once) { q.index = sent; q.wait = WAIT; }
          const { body, index: got } = await get(path, q, signal);
          if (signal.aborted) return;
          failures = 0;
          conn.ok(key);
          if (!sent || got !== sent) onData(body);
          if (once) { s.watches.delete(key); return; }
          index = got;
          if (got === sent && Date.now() - started < MIN_LOOP_MS) await sleep(MIN_LOOP_MS, signal);
        } catch (err) {
          if (signal.aborted) return;
          if (err instanceof APIError && err.status === 403) { askToken(err.message); return; }
          failures++;
          const delay = backoff(failures);
          conn.fail(key, err, delay);
          index = '';
          await sleep(delay, signal);
        }
      }
    })();
  }

  function unwatch(key) {
    session?.watches.get(key)?.abort();
    session?.watches.delete(key);
    conn.ok(key);
  }

  function stopAll() {
    if (!session) return;
    session.ctrl.abort();
    for (const c of session.watches.values()) c.abort();
    clearTimeout(session.resync);
    session = null;
    conn.failing.clear();
  }

  // ---- state -----------------------------------------------------------

  const state = {
    self: null,
    members: null,
    nodes: null,
    services: null, // {name: [tags]}
    summaries: new Map(), // name -> {passing, warning, critical, total}
    selected: null, // service name from the URL
    detail: null, // /v1/health/service/<selected>?near=_agent
  };

  function startAll() {
    stopAll();
    conn.locked = false;
    conn.paused = false;
    session = { ctrl: new AbortController(), watches: new Map(), resync: 0, listed: false };
    $('forget').hidden = !getToken();
    const readSelf = () => watch('agent', '/v1/agent/self', null, (b) => { state.self = b; renderAgent(); render('detail'); }, true);
    readSelf();
    watch('members', '/v1/agent/members', null, (b) => { state.members = b; render('members'); });
    watch('nodes', '/v1/catalog/nodes', null, (b) => { state.nodes = b; render('members'); });
    lastChecks = null;
    watch('services', '/v1/catalog/services', null, servicesChanged);
    watch('checks', '/v1/health/state/any', null, checksChanged);
    const s = session;
    const resync = () => {
      summaries.refresh();
      readSelf(); // the DNS settings may have changed with a reload (SIGHUP)
      const n = Object.keys(state.services || {}).length;
      s.resync = setTimeout(resync, Math.max(RESYNC_MS, n * RESYNC_PER_SERVICE_MS));
    };
    s.resync = setTimeout(resync, RESYNC_MS);
    route(true);
    conn.render();
  }

  // summaries keeps the service list's healthy/total counts: plain reads
  // of /v1/health/service/<name>. (A browser holds at most six HTTP/1.1
  // connections to one host, so a blocking query per service is not an
  // option; an endpoint with every service's counts would make this one
  // blocking query.) The blocking queries on the service list and on
  // every check say which services to read again: those that appeared or
  // whose tags changed, and those whose checks (or whose nodes' checks)
  // changed status, appeared or went. A periodic resync reads them all,
  // which also catches instances without checks coming or going. Reads
  // run one at a time, in rounds that never overlap.
  const summaries = {
    all: false, // the next round reads every service
    names: new Set(), // else these
    running: false,
    nodes: new Map(), // service name -> Set of the nodes of its instances
    refresh(names) {
      if (names === undefined) this.all = true;
      else for (const n of names) this.names.add(n);
      if (!this.running && (this.all || this.names.size > 0)) this.run();
    },
    // set records a fresh read of one service.
    set(name, entries) {
      state.summaries.set(name, summarize(entries));
      this.nodes.set(name, new Set(entries.map((e) => e.Node.Node)));
    },
    // onNodes returns the services with an instance on one of nodes.
    onNodes(nodes) {
      const out = [];
      for (const [name, set] of this.nodes) {
        for (const n of nodes) if (set.has(n)) { out.push(name); break; }
      }
      return out;
    },
    async run() {
      this.running = true;
      const s = session;
      try {
        while ((this.all || this.names.size > 0) && s && !s.ctrl.signal.aborted) {
          const names = this.all ? Object.keys(state.services || {}) : [...this.names];
          this.all = false;
          this.names.clear();
          let failed = false;
          let drawn = Date.now();
          for (const name of names) {
            if (s.ctrl.signal.aborted) return;
            if (!state.services || !Object.hasOwn(state.services, name)) continue;
            try {
              const { body } = await get(svcPath('/v1/health/service/', name), null, s.ctrl.signal);
              this.set(name, body);
              // Drawing after every read of a long round would take
              // longer than the reads.
              if (Date.now() - drawn > ROUND_DRAW_MS) {
                render('services');
                drawn = Date.now();
              }
            } catch (err) {
              if (s.ctrl.signal.aborted) return;
              if (err instanceof APIError && err.status === 403) { askToken(err.message); return; }
              this.names.add(name);
              failed = true;
            }
          }
          render('services');
          if (failed) await sleep(BACKOFF_MIN_MS, s.ctrl.signal);
        }
      } finally {
        this.running = false;
        // A new session asked while this one was ending.
        if ((this.all || this.names.size > 0) && session && session !== s) this.run();
      }
    },
  };

  // servicesChanged takes a new service list: services that went are
  // forgotten, new ones and those whose tags changed are read. A session
  // reads them all once it has both its first service list and its first
  // checks, so that every read is newer than the checks it compares with.
  function servicesChanged(next) {
    const prev = state.services;
    state.services = next;
    for (const name of [...state.summaries.keys()]) {
      if (!Object.hasOwn(next, name)) {
        state.summaries.delete(name);
        summaries.nodes.delete(name);
      }
    }
    render('services');
    if (!session.listed) {
      session.listed = true;
      if (lastChecks) summaries.refresh(); // the first full round
      return;
    }
    const changed = Object.keys(next).filter((name) =>
      !state.summaries.has(name) || !Object.hasOwn(prev, name) || prev[name].join('\0') !== next[name].join('\0'));
    summaries.refresh(changed);
  }

  // checksChanged takes every check in the catalog and reads again the
  // services whose counts it may have changed.
  let lastChecks = null; // Map node\0checkID -> check
  function checksChanged(list) {
    const next = new Map(list.map((c) => [c.Node + '\0' + c.CheckID, c]));
    const prev = lastChecks;
    lastChecks = next;
    if (!prev) {
      if (session.listed) summaries.refresh(); // the first full round
      return;
    }
    const names = new Set();
    const nodes = new Set();
    for (const [key, c] of [...next, ...prev]) {
      const a = prev.get(key);
      const b = next.get(key);
      if (a && b && a.Status === b.Status && a.ServiceID === b.ServiceID) continue;
      if (c.ServiceName) names.add(c.ServiceName);
      else nodes.add(c.Node);
    }
    for (const name of summaries.onNodes(nodes)) names.add(name);
    summaries.refresh(names);
  }

  // ---- health and DNS --------------------------------------------------

  // worst is the worst of check statuses; anything past warning (unknown
  // states too) counts as critical, as in catalog.AggregateHealth.
  function worst(statuses) {
    let w = 'passing';
    for (const st of statuses) {
      const r = Math.min(rank(st), HEALTH_RANK.critical);
      if (r > HEALTH_RANK[w]) w = r === HEALTH_RANK.critical ? 'critical' : st;
    }
    return w;
  }

  // instanceHealth is the aggregated health the agent uses: the worst of
  // the instance's checks, its node's and serfHealth; a maintenance check
  // counts as maintenance.
  function instanceHealth(entry) {
    const checks = entry.Checks || [];
    if (checks.some((c) => c.CheckID === '_node_maintenance' || c.CheckID.startsWith('_service_maintenance:'))) {
      return 'maintenance';
    }
    return worst(checks.map((c) => c.Status));
  }

  function summarize(entries) {
    const s = { passing: 0, warning: 0, critical: 0, total: entries.length };
    for (const e of entries) {
      const h = instanceHealth(e);
      if (h === 'passing') s.passing++;
      else if (h === 'warning') s.warning++;
      else s.critical++;
    }
    return s;
  }

  function summaryStatus(s) {
    if (!s) return 'unknown';
    if (s.total === 0) return 'empty';
    if (s.passing === s.total) return 'passing';
    if (s.passing + s.warning === 0) return 'critical';
    return 'warning';
  }

  const meta = (e, k) => (e.Service.Meta || {})[k];

  function tierOf(e) {
    const v = meta(e, 'chorus-priority');
    if (v !== undefined && /^\s*\d+\s*$/.test(v)) {
      const p = Number(v);
      if (p <= 65535) return p;
    }
    return 1;
  }

  function policyOf(e) {
    const v = meta(e, 'chorus-policy');
    if (v === undefined) return undefined;
    const k = v.trim().toLowerCase();
    return Object.hasOwn(POLICY_ALIASES, k) ? POLICY_ALIASES[k] : undefined;
  }

  // dnsSettings are the agent's DNS settings that change its answers, from
  // /v1/agent/self's DebugConfig (DNSOnlyPassing is Consul's key, the
  // Chorus ones are Chorus's own), at their defaults until it is read.
  function dnsSettings(self) {
    const d = (self && self.DebugConfig) || {};
    const p = typeof d.ChorusDNSPolicy === 'string' ? d.ChorusDNSPolicy.trim().toLowerCase() : '';
    return {
      policy: Object.hasOwn(POLICY_ALIASES, p) ? POLICY_ALIASES[p] : 'random',
      onlyPassing: d.DNSOnlyPassing === true,
      zoneFailover: d.ChorusDNSZoneFailover !== false,
    };
  }

  // servicePolicy is the policy the DNS server applies to the service: the
  // first valid chorus-policy among the instances, else the agent's
  // dns.policy. source says which.
  function servicePolicy(entries, self) {
    for (const e of entries) {
      const p = policyOf(e);
      if (p) return { policy: p, source: 'chorus-policy' };
    }
    return { policy: dnsSettings(self).policy, source: 'dns.policy' };
  }

  const zoneOf = (e) => (e.Node.Meta || {}).zone || '';

  function weightOf(e, health) {
    const w = e.Service.Weights || { Passing: 1, Warning: 1 };
    return health === 'passing' ? w.Passing : health === 'warning' ? w.Warning : 0;
  }

  function isIP(s) {
    return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) || (s.includes(':') && /^[0-9a-fA-F:.]+$/.test(s));
  }

  function hexAddr(ip) {
    if (!ip.includes(':')) return ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('');
    const [head, tail = ''] = ip.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
    return groups.map((g) => g.padStart(4, '0')).join('').toLowerCase();
  }

  // dnsAnswer applies the rules of docs/dns.md to the instances of one
  // service, as the answering agent (this one) would: health (with its
  // dns.only_passing), datacenter, tier (chorus-priority), zone within
  // each tier (with its dns.zone_failover), then the policy's order within
  // each tier (chorus-policy, else its dns.policy; least-loaded by the
  // Load the API reports, 0 when none was).
  function dnsAnswer(entries, self) {
    const cfg = (self && self.Config) || {};
    const dc = (cfg.Datacenter || '').toLowerCase();
    const zone = (cfg.Zone || '').toLowerCase();
    const domain = cfg.Domain || 'chorus.';
    const settings = dnsSettings(self);
    const { policy, source } = servicePolicy(entries, self);
    const candidates = [];
    const left = []; // [instance ID, why it is not answered]
    for (const [pos, e] of entries.entries()) {
      const health = instanceHealth(e);
      if (health !== 'passing' && health !== 'warning') { left.push([e.Service.ID, health]); continue; }
      if (health === 'warning' && settings.onlyPassing) { left.push([e.Service.ID, 'warning, dns.only_passing']); continue; }
      const ndc = (e.Node.Datacenter || '').toLowerCase();
      if (dc && ndc && ndc !== dc) { left.push([e.Service.ID, `datacenter ${e.Node.Datacenter}`]); continue; }
      candidates.push({ e, health, pos, tier: tierOf(e), weight: weightOf(e, health) });
    }
    const byTier = new Map();
    for (const c of candidates) {
      if (!byTier.has(c.tier)) byTier.set(c.tier, []);
      byTier.get(c.tier).push(c);
    }
    const tiers = [];
    let zoned = false; // an instance was left out by the zone rule
    for (const p of [...byTier.keys()].sort((a, b) => a - b)) {
      let t = byTier.get(p);
      if (zone) {
        const local = t.filter((c) => zoneOf(c.e).toLowerCase() === zone);
        if (local.length > 0 || !settings.zoneFailover) {
          zoned ||= local.length < t.length;
          for (const c of t) if (!local.includes(c)) left.push([c.e.Service.ID, `zone ${zoneOf(c.e) || 'none'}`]);
          t = local;
        }
      }
      if (t.length > 0) tiers.push({ priority: p, items: orderTier(t, policy) });
    }
    for (const t of tiers) {
      for (const c of t.items) {
        const s = c.e.Service;
        const n = c.e.Node;
        const addr = s.Address || n.Address;
        c.addr = addr;
        if (s.Address && s.Address !== n.Address) {
          c.target = isIP(s.Address) ? `${hexAddr(s.Address)}.addr.${domain}` : s.Address.replace(/\.?$/, '.');
        } else {
          c.target = `${n.Node}.node.${domain}`;
        }
      }
    }
    const first = tiers[0] ? tiers[0].items : [];
    const a = [...new Set(first.filter((c) => isIP(c.addr) && !c.addr.includes(':')).map((c) => c.addr))];
    const aaaa = [...new Set(first.filter((c) => isIP(c.addr) && c.addr.includes(':')).map((c) => c.addr))];
    return { policy, source, settings, zoned, tiers, left, a, aaaa, zone: cfg.Zone || '', name: `${entries[0]?.Service.Service}.service.${domain}` };
  }

  // orderTier orders a tier as the policy does for one query. Orders that
  // change with every query (random, round-robin) or with the client
  // (hash) are shown in a stable order and the page says how they vary.
  function orderTier(items, policy) {
    const byName = (a, b) => a.e.Node.Node.localeCompare(b.e.Node.Node) || a.e.Service.ID.localeCompare(b.e.Service.ID);
    const out = [...items];
    switch (policy) {
      case 'nearest':
        out.sort((a, b) => a.pos - b.pos); // the answer came with ?near=_agent
        break;
      case 'least-loaded':
        out.sort((a, b) => loadOf(a.e) - loadOf(b.e) || byName(a, b));
        break;
      case 'random':
        out.sort((a, b) => b.weight - a.weight || byName(a, b));
        break;
      default:
        out.sort(byName);
    }
    return out;
  }

  // loadOf is an instance's load figure as the least-loaded policy reads
  // it: 0 until one is reported (the API then leaves Load out).
  const loadOf = (e) => (typeof e.Service.Load === 'number' ? e.Service.Load : 0);

  function policyNote(policy) {
    switch (policy) {
      case 'random': return 'Shuffled on every query, weighted by SRV weight; heaviest shown first.';
      case 'round-robin': return 'Rotates by one on every query for this name; shown from its start.';
      case 'least-loaded': return 'Lowest load first (an instance that reported none counts as 0); ties at random, shown by node.';
      case 'nearest': return 'Lowest round-trip time from this agent first (network coordinates).';
      case 'hash': return 'Each client address (or EDNS client subnet) gets its own stable order (rendezvous hashing).';
      default: return '';
    }
  }

  // ---- rendering -------------------------------------------------------

  const pending = new Set();
  let renderTimer = 0;

  // render schedules a section to be drawn once for every burst of
  // changes.
  function render(what) {
    pending.add(what);
    if (!renderTimer) {
      renderTimer = setTimeout(() => {
        renderTimer = 0;
        const todo = [...pending];
        pending.clear();
        for (const w of todo) ({ services: renderServices, members: renderMembers, detail: renderDetail })[w]();
      }, 16);
    }
  }

  function renderAgent() {
    const c = (state.self && state.self.Config) || {};
    const parts = [c.NodeName && `agent ${c.NodeName}`, c.Datacenter && `dc ${c.Datacenter}`,
      c.Zone && `zone ${c.Zone}`, c.Version && `v${c.Version}`].filter(Boolean);
    $('agent').textContent = parts.join(' · ');
    document.title = c.NodeName ? `Chorus · ${c.NodeName}` : 'Chorus';
  }

  // serviceRows caches the list's rows by service name with what they
  // show, so that a change redraws only the rows it touched.
  const serviceRows = new Map(); // name -> {key, li}

  function serviceRow(name) {
    const tags = state.services[name] || [];
    const s = state.summaries.get(name);
    const key = [tags.join('\0'), s ? `${s.passing}/${s.warning}/${s.total}` : '', name === state.selected].join('|');
    const cached = serviceRows.get(name);
    if (cached && cached.key === key) return cached.li;
    const st = summaryStatus(s);
    const count = s ? `${s.passing}/${s.total}` : '…';
    const label = s ? `${s.passing} of ${s.total} instances healthy` : 'counting instances';
    const li = el('li', { 'data-service': name, 'data-status': st },
      el('a', { href: '#/service/' + encodeURIComponent(name), 'data-name': name,
        'aria-current': name === state.selected ? 'page' : null },
      el('span', { class: 'svc-name' }, name),
      tags.length ? chips(tags, 'small', true) : null,
      el('span', { class: 'count', 'data-status': st, title: label },
        el('span', { 'aria-hidden': 'true' }, count), el('span', { class: 'sr' }, label))));
    serviceRows.set(name, { key, li });
    return li;
  }

  function renderServices() {
    const list = $('services');
    const filter = $('filter').value.trim().toLowerCase();
    const services = state.services || {};
    const names = Object.keys(services).sort((a, b) => a.localeCompare(b));
    for (const name of serviceRows.keys()) {
      if (!Object.hasOwn(services, name)) serviceRows.delete(name);
    }
    const items = [];
    for (const name of names) {
      const tags = services[name] || [];
      if (filter && !name.toLowerCase().includes(filter) && !tags.some((t) => t.toLowerCase().includes(filter))) continue;
      items.push(serviceRow(name));
    }
    $('services-empty').hidden = names.length > 0 || state.services === null;
    const now = list.children;
    if (now.length === items.length && items.every((li, i) => now[i] === li)) return;
    const focused = document.activeElement && list.contains(document.activeElement)
      ? document.activeElement.dataset.name : undefined;
    list.replaceChildren(...items);
    if (focused !== undefined) list.querySelector(`a[data-name="${CSS.escape(focused)}"]`)?.focus();
  }

  function renderMembers() {
    const body = $('members');
    const nodes = new Map((state.nodes || []).map((n) => [n.Node, n]));
    const rows = [];
    const seen = new Set();
    const cell = (label, ...c) => el('td', { 'data-label': label }, ...c);
    for (const m of (state.members || []).slice().sort((a, b) => a.Name.localeCompare(b.Name))) {
      seen.add(m.Name);
      const n = nodes.get(m.Name);
      const status = MEMBER_STATUS[m.Status] || String(m.Status);
      const tags = m.Tags || {};
      rows.push(el('tr', { 'data-member': m.Name },
        el('th', { scope: 'row' }, m.Name),
        cell('Status', badge(status === 'alive' ? 'passing' : status === 'failed' ? 'critical' : 'maintenance', status)),
        cell('Address', n ? n.Address : '—'),
        cell('Gossip', `${m.Addr}:${m.Port}`),
        cell('Datacenter', tags.dc || (n && n.Datacenter) || '—'),
        cell('Zone', tags.zone || (n && n.Meta && n.Meta.zone) || '—'),
        cell('Meta', metaChips(n && n.Meta, ['zone', 'consul-network-segment']))));
    }
    for (const n of state.nodes || []) {
      if (seen.has(n.Node)) continue;
      rows.push(el('tr', { 'data-member': n.Node },
        el('th', { scope: 'row' }, n.Node),
        cell('Status', badge('maintenance', 'not a member')),
        cell('Address', n.Address), cell('Gossip', '—'), cell('Datacenter', n.Datacenter || '—'),
        cell('Zone', (n.Meta && n.Meta.zone) || '—'), cell('Meta', metaChips(n.Meta, ['zone', 'consul-network-segment']))));
    }
    body.replaceChildren(...rows);
  }

  function metaChips(m, skip) {
    const kv = Object.entries(m || {}).filter(([k]) => !skip.includes(k)).sort(([a], [b]) => a.localeCompare(b));
    return kv.length ? chips(kv.map(([k, v]) => `${k}=${v}`), 'small') : '—';
  }

  function renderDetail() {
    const sec = $('detail');
    const name = state.selected;
    if (!name) {
      sec.replaceChildren(el('h2', { id: 'detail-h' }, 'Service'),
        el('p', { class: 'empty' }, 'Choose a service to see its instances, their checks and the DNS answer.'));
      return;
    }
    const entries = state.detail;
    const head = el('div', { class: 'panel-head' }, el('h2', { id: 'detail-h', tabindex: '-1' }, name));
    if (!entries) {
      sec.replaceChildren(head, el('p', { class: 'empty' }, 'Loading…'));
      return;
    }
    const s = summarize(entries);
    head.append(el('span', { class: 'count', 'data-status': summaryStatus(s) },
      `${s.passing}/${s.total} healthy`));
    if (entries.length === 0) {
      sec.replaceChildren(head, el('p', { class: 'empty' }, 'No instance of this service is registered.'));
      return;
    }
    const { policy } = servicePolicy(entries, state.self);
    sec.replaceChildren(head, renderDNS(entries),
      el('h3', null, `Instances (${entries.length})`),
      el('ul', { class: 'instances' }, entries.map((e) => renderInstance(e, policy))));
  }

  function renderDNS(entries) {
    const ans = dnsAnswer(entries, state.self);
    const box = el('section', { class: 'dns', 'aria-labelledby': 'dns-h', 'data-policy': ans.policy });
    box.append(el('h3', { id: 'dns-h' }, 'DNS answer now'),
      el('p', { class: 'muted' }, el('code', null, ans.name), ' asked of this agent',
        ans.zone ? ` (zone ${ans.zone})` : '', ' · policy ',
        el('strong', null, ans.policy), ` (${ans.source})`));
    const leftOut = ans.left.length === 0 ? null : el('p', { class: 'left' }, 'Left out: ',
      ans.left.map(([id, why], i) => [i ? ', ' : '', el('span', { 'data-left': id }, `${id} (${why})`)]));
    if (ans.tiers.length === 0) {
      box.append(el('p', { class: 'nx', 'data-rcode': 'NXDOMAIN' }, 'NXDOMAIN: no instance can be answered.'), leftOut);
      return box;
    }
    const ol = el('ol', { class: 'records' });
    for (const [ti, t] of ans.tiers.entries()) {
      for (const c of t.items) {
        ol.append(el('li', { 'data-instance': c.e.Service.ID, 'data-tier': t.priority },
          el('code', null, `SRV ${t.priority} ${c.weight} ${c.e.Service.Port} ${c.target}`),
          ti === 0 ? null : el('span', { class: 'muted' }, ' backup tier'),
          c.health === 'warning' ? el('span', { class: 'muted' }, ' warning') : null));
      }
    }
    box.append(ol);
    const addrs = [...ans.a.map((x) => `A ${x}`), ...ans.aaaa.map((x) => `AAAA ${x}`)];
    if (addrs.length) {
      box.append(el('p', { class: 'addrs' }, 'Addresses (best tier only): ', addrs.map((x, i) => [i ? ', ' : '', el('code', null, x)])));
    }
    if (leftOut) box.append(leftOut);
    const notes = [policyNote(ans.policy)];
    if (ans.zoned) {
      notes.push(ans.settings.zoneFailover
        ? `Only the instances in zone ${ans.zone} are answered where a tier has one.`
        : `Only the instances in zone ${ans.zone} are answered (dns.zone_failover is off).`);
    }
    if (ans.tiers.length > 1) notes.push('SRV carries every tier; A and AAAA only the best.');
    box.append(el('p', { class: 'muted small' }, notes.join(' ')));
    return box;
  }

  function renderInstance(e, policy) {
    const s = e.Service;
    const n = e.Node;
    const health = instanceHealth(e);
    const rows = [
      ['Address', `${s.Address || n.Address}${s.Port ? ':' + s.Port : ''}`],
      ['Node', [n.Node, zoneOf(e) ? ` · zone ${zoneOf(e)}` : '', n.Datacenter ? ` · ${n.Datacenter}` : '']],
      ['Tier', String(tierOf(e)) + (meta(e, 'chorus-priority') === undefined ? ' (default)' : '')],
    ];
    if (meta(e, 'chorus-policy') !== undefined) rows.push(['Policy', meta(e, 'chorus-policy')]);
    if (typeof s.Load === 'number') rows.push(['Load', String(s.Load)]);
    else if (policy === 'least-loaded') rows.push(['Load', ['0 ', el('span', { class: 'muted' }, '(none reported)')]]);
    rows.push(['Weights', `passing ${(s.Weights || {}).Passing ?? 1} · warning ${(s.Weights || {}).Warning ?? 1}`]);
    if (meta(e, 'chorus-ttl') !== undefined) rows.push(['DNS TTL', meta(e, 'chorus-ttl')]);
    if ((s.Tags || []).length) rows.push(['Tags', chips(s.Tags)]);
    const other = Object.entries(s.Meta || {}).filter(([k]) => !k.startsWith('chorus-'));
    if (other.length) rows.push(['Meta', chips(other.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`))]);
    const checks = (e.Checks || []).slice().sort((a, b) =>
      rank(b.Status) - rank(a.Status) || a.CheckID.localeCompare(b.CheckID));
    return el('li', { class: 'inst', 'data-instance': s.ID, 'data-node': n.Node, 'data-status': health },
      el('div', { class: 'inst-head' }, el('h4', null, s.ID), badge(health)),
      el('dl', { class: 'kv' }, rows.map(([k, v]) => [el('dt', null, k), el('dd', null, v)])),
      el('ul', { class: 'checks', 'aria-label': `Checks of ${s.ID}` }, checks.map((c) =>
        el('li', { 'data-check': c.CheckID, 'data-status': c.Status },
          el('div', { class: 'check-head' }, badge(c.Status), el('span', { class: 'check-name' }, c.Name || c.CheckID),
            el('span', { class: 'muted small' }, c.ServiceID ? (c.Type || 'check') : 'node check')),
          c.Output ? el('pre', { class: 'output' }, c.Output) : null,
          c.Notes ? el('p', { class: 'muted small' }, c.Notes) : null))));
  }

  // ---- routing ---------------------------------------------------------

  // route follows the URL: #/service/<name> opens that service and starts
  // its blocking query; any other hash closes it. restart starts the query
  // again for the same service (a new session).
  function route(restart) {
    const m = /^#\/service\/(.+)$/.exec(location.hash);
    let name = null;
    if (m) {
      try { name = decodeURIComponent(m[1]); } catch { name = null; }
    }
    if (name === state.selected && !restart) return;
    if (name !== state.selected) state.detail = null;
    state.selected = name;
    if (!session) return;
    unwatch('service');
    if (name) {
      watch('service', svcPath('/v1/health/service/', name), { near: '_agent' }, (b) => {
        state.detail = b;
        summaries.set(name, b);
        render('detail');
        render('services');
      });
    }
    render('detail');
    render('services');
  }

  // ---- token prompt ----------------------------------------------------

  function askToken(message) {
    stopAll();
    conn.locked = true;
    conn.render();
    const dlg = $('login');
    const had = getToken();
    $('login-msg').textContent = had
      ? `The agent refused this token: ${message}`
      : 'This agent requires an ACL token to read its catalog.';
    $('forget').hidden = !had;
    if (!dlg.open) dlg.showModal();
    $('token').focus();
  }

  function init() {
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token').value.trim();
      if (!t) return;
      setToken(t);
      $('token').value = '';
      $('login').close();
      startAll();
    });
    $('login').addEventListener('cancel', (ev) => ev.preventDefault());
    $('forget').addEventListener('click', () => {
      setToken('');
      $('login').open && $('login').close();
      startAll();
    });
    $('filter').addEventListener('input', () => renderServices());
    // A hidden page holds no connection: a browser keeps at most six
    // HTTP/1.1 connections to one host for all its tabs, and every
    // blocking query holds one. Shown again, the page starts afresh.
    document.addEventListener('visibilitychange', () => {
      if (conn.locked) return;
      if (document.hidden) {
        stopAll();
        conn.paused = true;
        conn.render();
      } else {
        startAll();
      }
    });
    window.addEventListener('hashchange', () => {
      route();
      // On a phone the service opens below the list: bring it into view.
      if (state.selected && matchMedia('(max-width: 59.99rem)').matches) {
        setTimeout(() => $('detail').scrollIntoView({ block: 'start' }), 50);
      }
    });
    startAll();
  }

  init();
})();
