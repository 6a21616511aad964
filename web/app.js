// replication-manager dashboard: one page, plain JavaScript, no build step, no other origin.
// It calls only the documented REST API of the node that served it, keeps the token in the
// browser session (sessionStorage), and refreshes itself about every second.
'use strict';

(function () {
  const REFRESH_MS = 1000;
  const REQUEST_TIMEOUT_MS = 5000;
  // Actions wait for the manager (a switchover waits for the replicas to catch up).
  const ACTION_TIMEOUT_MS = 600000;
  const LOG_LINES = 200;

  const state = {
    token: sessionStorage.getItem('rm.token') || '',
    user: sessionStorage.getItem('rm.user') || '',
    cluster: sessionStorage.getItem('rm.cluster') || '',
    timer: null,
    busy: false,
    rendered: {},
    clusters: [],
    masters: {},
    servers: [],
    master: null,
    group: null,
    pending: null,
  };

  const $ = (id) => document.getElementById(id);

  // A DOM element: h('div', {class: 'x', dataset: {role: 'master'}}, 'text', child, ...).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'onclick') el.addEventListener('click', v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  // Replaces the content of `el` only when what it shows changed (so a button is not
  // replaced under the pointer every second).
  function renderInto(key, el, model, build) {
    const sig = JSON.stringify(model);
    if (state.rendered[key] === sig) return;
    state.rendered[key] = sig;
    const parts = [].concat(build(model)).flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false);
    el.replaceChildren(...parts);
  }

  // ---- API -------------------------------------------------------------------------------

  async function call(method, path, opts = {}) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), opts.timeout || REQUEST_TIMEOUT_MS);
    const headers = { Accept: 'application/json' };
    if (state.token && !opts.anonymous) headers.Authorization = 'Bearer ' + state.token;
    if (opts.json !== undefined) headers['Content-Type'] = 'application/json';
    if (opts.form !== undefined) headers['Content-Type'] = 'application/x-www-form-urlencoded';
    let body;
    if (opts.json !== undefined) body = JSON.stringify(opts.json);
    if (opts.form !== undefined) body = new URLSearchParams(opts.form).toString();
    try {
      const resp = await fetch(path, { method, headers, body, signal: ctrl.signal, cache: 'no-store' });
      const text = await resp.text();
      let json = null;
      if (text && (text[0] === '{' || text[0] === '[' || text === 'null')) {
        try { json = JSON.parse(text); } catch (_) { json = null; }
      }
      if (resp.status === 401 && !opts.anonymous) {
        logout('Your session ended (' + text.trim() + '): log in again.');
        throw new SessionEnded();
      }
      return { status: resp.status, ok: resp.ok, text, json, servedBy: resp.headers.get('x-replication-manager-served-by') };
    } finally {
      clearTimeout(timer);
    }
  }

  class SessionEnded extends Error {}

  async function get(path) {
    const r = await call('GET', path);
    if (!r.ok) throw new Error(path + ': ' + r.status + ' ' + r.text.trim());
    return r.json;
  }

  const enc = encodeURIComponent;
  const clusterPath = (c) => '/api/clusters/' + enc(c);

  // ---- login -----------------------------------------------------------------------------

  async function login() {
    const user = $('login-user').value.trim();
    const password = $('login-password').value;
    $('login-error').textContent = '';
    let r;
    try {
      r = await call('POST', '/api/login', { json: { username: user, password }, anonymous: true });
    } catch (e) {
      $('login-error').textContent = 'The manager did not answer: ' + e.message;
      return;
    }
    if (r.status === 429) {
      $('login-error').textContent = '3 authentication errors for the user ' + user + ', please try again in 3 minutes';
      return;
    }
    if (!r.ok || !r.json || !r.json.token) {
      $('login-error').textContent = r.text.trim() || ('Login refused (' + r.status + ')');
      return;
    }
    state.token = r.json.token;
    state.user = user;
    sessionStorage.setItem('rm.token', state.token);
    sessionStorage.setItem('rm.user', user);
    $('login-password').value = '';
    show();
  }

  function logout(reason) {
    sessionStorage.removeItem('rm.token');
    sessionStorage.removeItem('rm.user');
    state.token = '';
    state.user = '';
    state.rendered = {};
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    $('login-error').textContent = reason || '';
    show();
  }

  function show() {
    const logged = !!state.token;
    $('login-view').hidden = logged;
    $('app-view').hidden = !logged;
    $('logout').hidden = !logged;
    $('whoami').textContent = logged ? 'user ' + state.user : '';
    if (!logged) {
      $('node-status').replaceChildren();
      $('banner').hidden = true;
      $('login-user').focus();
      return;
    }
    if (!state.timer) tick();
  }

  // ---- refresh loop ----------------------------------------------------------------------

  async function tick() {
    state.timer = null;
    if (!state.token) return;
    const started = Date.now();
    try {
      await refresh();
      $('banner').hidden = true;
    } catch (e) {
      if (e instanceof SessionEnded) return;
      $('banner').textContent = 'Refresh failed: ' + (e && e.message ? e.message : e) + ' (retrying)';
      $('banner').hidden = false;
    }
    if (state.token) state.timer = setTimeout(tick, Math.max(200, REFRESH_MS - (Date.now() - started)));
  }

  async function refresh() {
    const [clusters, group] = await Promise.all([get('/api/clusters'), get('/api/group')]);
    state.clusters = clusters || [];
    state.group = group;
    const names = state.clusters.map((c) => c.name);
    if (!names.includes(state.cluster)) state.cluster = names[0] || '';
    sessionStorage.setItem('rm.cluster', state.cluster);
    const masters = await Promise.all(names.map((n) => get(clusterPath(n) + '/topology/master').catch(() => null)));
    names.forEach((n, i) => { state.masters[n] = masters[i]; });
    const cluster = current();
    let detail = null;
    if (cluster) {
      const base = clusterPath(cluster.name);
      const wantJobs = can(cluster, 'cluster-process', 'db-backup');
      const [servers, alerts, crashes, logs, proxies, jobs] = await Promise.all([
        get(base + '/topology/servers'),
        get(base + '/topology/alerts'),
        get(base + '/topology/crashes'),
        get(base + '/topology/logs'),
        get(base + '/topology/proxies'),
        wantJobs ? get(base + '/jobs') : Promise.resolve(null),
      ]);
      detail = { servers: servers || [], alerts, crashes: crashes || [], logs: logs || [], proxies, jobs, wantJobs };
    }
    render(cluster, detail);
  }

  function current() {
    return state.clusters.find((c) => c.name === state.cluster) || null;
  }

  // ---- grants ----------------------------------------------------------------------------

  // The cluster object lists every API user with the grants it holds in that cluster
  // (`apiUsers`); the page shows an action only to a user holding one of its grants.
  function grants(cluster) {
    const u = cluster && cluster.apiUsers && cluster.apiUsers[state.user];
    return (u && u.grants) || {};
  }

  function can(cluster, ...names) {
    const g = grants(cluster);
    return names.some((n) => g[n] === true);
  }

  // ---- formatting ------------------------------------------------------------------------

  function stateKind(s) {
    switch (s) {
      case 'Master': return 'ok';
      case 'Slave': return 'info';
      case 'SlaveLate': case 'Suspect': return 'warn';
      case 'SlaveErr': case 'Failed': case 'ErrorAuth': return 'bad';
      case 'Maintenance': return 'maint';
      default: return 'idle';
    }
  }

  const badge = (text, kind) => h('span', { class: 'badge s-' + kind }, text);

  function gtid(list) {
    if (!list || !list.length) return '-';
    return list.map((g) => g.domainId + '-' + g.serverId + '-' + g.seqNo).join(',');
  }

  const ns = (v) => (v && v.Valid ? v.String : '');

  function lag(server) {
    const r = (server.replications || [])[0];
    if (!r) return null;
    return r.secondsBehindMaster && r.secondsBehindMaster.Valid ? r.secondsBehindMaster.Int64 : null;
  }

  function upstream(server) {
    const r = (server.replications || [])[0];
    if (!r || !ns(r.masterHost)) return '';
    return ns(r.masterHost) + ':' + ns(r.masterPort);
  }

  function threads(server) {
    const r = (server.replications || [])[0];
    if (!r) return '';
    return 'IO ' + (ns(r.slaveIoRunning) || '?') + ' / SQL ' + (ns(r.slaveSqlRunning) || '?');
  }

  function semiSync(server, isMaster) {
    if (!server.haveSemiSync) return 'off';
    if (isMaster) return server.semiSyncMasterStatus ? 'master ON (' + server.semiSyncMasterClients + ' clients)' : 'master OFF';
    return server.semiSyncSlaveStatus ? 'replica ON' : 'replica OFF';
  }

  function when(unix) {
    if (!unix) return '-';
    const d = new Date(unix * 1000);
    return d.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  }

  function duration(seconds) {
    if (seconds < 60) return seconds + ' s';
    const m = Math.floor(seconds / 60);
    return m + ' min ' + (seconds % 60) + ' s';
  }

  function bytes(n) {
    if (!n) return '0 B';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return (i ? v.toFixed(1) : v) + ' ' + units[i];
  }

  // ---- rendering -------------------------------------------------------------------------

  function render(cluster, detail) {
    renderNodeStatus();
    renderClusters();
    if (!cluster || !detail) return;
    state.servers = detail.servers;
    state.master = state.masters[cluster.name] || null;
    $('topology-cluster').textContent = cluster.name;
    renderClusterActions(cluster);
    renderTopology(cluster, detail.servers, state.master);
    renderServers(cluster, detail.servers, state.master);
    renderAlerts(detail.alerts);
    renderJournal(detail.crashes);
    renderJobs(detail.jobs, detail.wantJobs);
    renderProxies(detail.proxies);
    renderLog(detail.logs);
    renderGroup();
  }

  function renderNodeStatus() {
    const g = state.group;
    if (!g) return;
    const anyLost = state.clusters.some((c) => c.isLostMajority);
    const model = { id: g.nodeId, status: g.status, st: g.state, term: g.term, leader: g.leader, split: g.splitBrain, lost: anyLost };
    renderInto('node', $('node-status'), model, (m) => [
      h('span', {}, 'node ' + m.id),
      badge(m.status === 'A' ? 'A · active' : 'S · standby', m.status === 'A' ? 'ok' : 'idle'),
      h('span', {}, m.st + ', term ' + m.term + ', leader ' + (m.leader === null || m.leader === undefined ? 'none' : 'node ' + m.leader)),
      m.split ? badge('split brain', 'bad') : null,
      m.lost ? badge('lost majority', 'bad') : null,
    ]);
  }

  function clusterHealth(c) {
    if (c.isDown || c.isClusterDown) return ['down', 'bad'];
    const errors = (c.alerts && c.alerts.errors) || [];
    const warnings = (c.alerts && c.alerts.warnings) || [];
    if (errors.length) return [errors.length + ' error' + (errors.length > 1 ? 's' : ''), 'bad'];
    if (warnings.length) return [warnings.length + ' warning' + (warnings.length > 1 ? 's' : ''), 'warn'];
    return ['healthy', 'ok'];
  }

  function renderClusters() {
    const rows = state.clusters.map((c) => {
      const master = state.masters[c.name];
      const crashes = c.dbServersCrashes || [];
      return {
        name: c.name,
        health: clusterHealth(c),
        master: master ? [master.url, master.state] : null,
        servers: (c.dbServers || []).length,
        failovers: c.failoverCounter,
        switchovers: crashes.filter((x) => x.Switchover).length,
        mode: (c.config && c.config.failoverMode) || '',
        selected: c.name === state.cluster,
      };
    });
    renderInto('clusters', $('clusters').tBodies[0], rows, (list) => {
      if (!list.length) return h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No cluster is configured.'));
      return list.map((r) => h('tr', {
        class: r.selected ? 'selected' : '',
        dataset: { cluster: r.name },
        onclick: () => selectCluster(r.name),
      },
      h('td', { class: 'cluster-name' }, h('strong', {}, r.name)),
      h('td', { class: 'cluster-health' }, badge(r.health[0], r.health[1])),
      h('td', { class: 'cluster-master mono' }, r.master ? [r.master[0], ' ', badge(r.master[1], stateKind(r.master[1]))] : badge('no master', 'bad')),
      h('td', {}, r.servers),
      h('td', { class: 'cluster-failovers' }, r.failovers),
      h('td', { class: 'cluster-switchovers' }, r.switchovers),
      h('td', {}, r.mode)));
    });
  }

  function selectCluster(name) {
    if (name === state.cluster) return;
    state.cluster = name;
    sessionStorage.setItem('rm.cluster', name);
    state.rendered = {};
    if (state.timer) clearTimeout(state.timer);
    tick();
  }

  function actionButton(label, kind, action, server, extra) {
    return h('button', {
      type: 'button',
      class: 'action ' + (extra || ''),
      dataset: { action, server: server || '' },
      onclick: () => confirmAction(kind, action, server),
    }, label);
  }

  function renderClusterActions(cluster) {
    const model = {
      cluster: cluster.name,
      switchover: can(cluster, 'cluster-switchover'),
      failover: can(cluster, 'cluster-failover'),
    };
    renderInto('cluster-actions', $('cluster-actions'), model, (m) => [
      m.switchover ? actionButton('Switchover…', 'cluster', 'switchover', '', 'primary') : null,
      m.failover ? actionButton('Failover…', 'cluster', 'failover', '', 'danger') : null,
    ]);
  }

  // Master on top, each server under the server it replicates from; servers outside the tree
  // (failed, stand-alone, replicating from elsewhere) in a row below.
  function renderTopology(cluster, servers, master) {
    const byUrl = new Map(servers.map((s) => [s.url, s]));
    const children = new Map();
    for (const s of servers) {
      const up = upstream(s);
      if (!up || up === s.url || !byUrl.has(up)) continue;
      if (!children.has(up)) children.set(up, []);
      children.get(up).push(s.url);
    }
    const seen = new Set();
    function tree(url, depth) {
      seen.add(url);
      const kids = (children.get(url) || []).filter((k) => !seen.has(k) && depth < 8);
      return { url, kids: kids.map((k) => tree(k, depth + 1)) };
    }
    const root = master && byUrl.has(master.url) ? tree(master.url, 0) : null;
    const card = (s, role) => ({
      url: s.url,
      id: s.id,
      role,
      state: s.state,
      readOnly: s.readOnly,
      gtid: gtid(s.gtidCurrentPos),
      slaveGtid: gtid(s.gtidSlavePos),
      lag: lag(s),
      threads: threads(s),
      semi: semiSync(s, role === 'master'),
      maintenance: s.isMaintenance,
      version: s.dbVersion ? s.dbVersion.flavor + ' ' + s.dbVersion.major + '.' + s.dbVersion.minor + '.' + s.dbVersion.release : '',
      error: s.lastError,
    });
    function modelOf(node, role) {
      return { card: card(byUrl.get(node.url), role), kids: node.kids.map((k) => modelOf(k, 'replica')) };
    }
    const model = {
      root: root ? modelOf(root, 'master') : null,
      detached: servers.filter((s) => !seen.has(s.url)).map((s) => card(s, 'detached')),
    };
    renderInto('topology', $('topology'), model, (m) => {
      const out = [];
      if (m.root) {
        out.push(h('ul', { class: 'tree' }, treeItem(m.root)));
      } else {
        out.push(h('p', { class: 'empty' }, 'No master is known for this cluster.'));
      }
      if (m.detached.length) {
        out.push(h('div', { class: 'detached' },
          h('h3', {}, 'Not replicating from the master'),
          h('div', { class: 'row' }, m.detached.map(nodeCard))));
      }
      return out;
    });
  }

  function treeItem(node) {
    return h('li', {}, nodeCard(node.card), node.kids.length ? h('ul', {}, node.kids.map(treeItem)) : null);
  }

  function nodeCard(c) {
    const kind = stateKind(c.state);
    const rows = [['GTID', c.gtid]];
    if (c.role !== 'master') {
      rows.push(['replica GTID', c.slaveGtid]);
      rows.push(['lag', c.lag === null ? '-' : c.lag + ' s']);
      if (c.threads) rows.push(['threads', c.threads]);
    }
    rows.push(['read_only', c.readOnly]);
    rows.push(['semi-sync', c.semi]);
    if (c.version) rows.push(['version', c.version]);
    if (c.error) rows.push(['error', c.error]);
    return h('div', { class: 'node k-' + kind, dataset: { role: c.role, url: c.url, state: c.state } },
      h('div', { class: 'title' }, h('span', { class: 'addr mono' }, c.url), badge(c.state, kind)),
      c.maintenance ? h('div', {}, badge('maintenance', 'maint')) : null,
      h('dl', {}, rows.map(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, v)])));
  }

  function renderServers(cluster, servers, master) {
    const masterUrl = master ? master.url : '';
    const g = {
      maintenance: can(cluster, 'db-maintenance'),
      start: can(cluster, 'db-replication', 'db-start'),
      stop: can(cluster, 'db-replication', 'db-stop'),
      backup: can(cluster, 'db-backup'),
      reseed: can(cluster, 'db-restore'),
    };
    const rows = servers.map((s) => ({
      id: s.id,
      url: s.url,
      isMaster: s.url === masterUrl,
      state: s.state,
      readOnly: s.readOnly,
      gtid: gtid(s.gtidCurrentPos),
      upstream: upstream(s),
      threads: threads(s),
      lag: lag(s),
      semi: semiSync(s, s.url === masterUrl),
      health: s.replicationHealth,
      maintenance: s.isMaintenance,
      replicating: (s.replications || []).length > 0,
      running: (s.replications || []).length > 0 && ns(s.replications[0].slaveIoRunning) === 'Yes' && ns(s.replications[0].slaveSqlRunning) === 'Yes',
    }));
    renderInto('servers', $('servers').tBodies[0], { rows, g }, (m) => m.rows.map((r) => {
      const buttons = [];
      if (m.g.maintenance) buttons.push(actionButton(r.maintenance ? 'Maintenance off' : 'Maintenance on', 'server', 'maintenance', r.url, 'small'));
      if (!r.isMaster && r.replicating && r.running && m.g.stop) buttons.push(actionButton('Stop replication', 'server', 'stop-slave', r.url, 'small'));
      if (!r.isMaster && r.replicating && !r.running && m.g.start) buttons.push(actionButton('Start replication', 'server', 'start-slave', r.url, 'small'));
      if (m.g.backup && r.state !== 'Failed') buttons.push(actionButton('Backup', 'server', 'backup-logical', r.url, 'small'));
      if (!r.isMaster && m.g.reseed) buttons.push(actionButton('Reseed…', 'server', 'reseed', r.url, 'small'));
      return h('tr', { dataset: { url: r.url, state: r.state } },
        h('td', { class: 'mono' }, h('strong', {}, r.url), h('div', { class: 'muted' }, r.id)),
        h('td', {}, badge(r.state, stateKind(r.state)), r.maintenance ? [' ', badge('maintenance', 'maint')] : null),
        h('td', {}, badge(r.readOnly, r.readOnly === 'ON' ? 'idle' : (r.isMaster ? 'ok' : 'bad'))),
        h('td', { class: 'mono' }, r.gtid),
        h('td', { class: 'mono' }, r.upstream ? ['from ' + r.upstream, h('div', { class: 'muted' }, r.threads)] : '-'),
        h('td', {}, r.lag === null ? '-' : r.lag + ' s'),
        h('td', {}, r.semi),
        h('td', {}, r.health || ''),
        h('td', { class: 'row-actions' }, buttons.length ? buttons : h('span', { class: 'muted' }, '-')));
    }));
  }

  function renderAlerts(alerts) {
    const errors = (alerts && alerts.errors) || [];
    const warnings = (alerts && alerts.warnings) || [];
    renderInto('alerts', $('alerts'), { errors, warnings }, (m) => {
      if (!m.errors.length && !m.warnings.length) return h('p', { class: 'empty' }, 'No open alert.');
      const item = (a, cls) => h('div', { class: 'alert ' + cls },
        h('span', { class: 'code' }, a.number), h('span', {}, a.desc), h('span', { class: 'from' }, a.from));
      return [...m.errors.map((a) => item(a, 'error')), ...m.warnings.map((a) => item(a, 'warning'))];
    });
  }

  function renderJournal(crashes) {
    const rows = [...crashes].sort((a, b) => (b.UnixTimestamp || 0) - (a.UnixTimestamp || 0)).map((c) => {
      const d = c.Details || {};
      return {
        time: c.UnixTimestamp,
        kind: c.Switchover ? 'switchover' : 'failover',
        oldMaster: c.URL || d.old_master || '',
        elected: c.ElectedMasterURL || d.elected_master || '',
        trigger: d.trigger || '',
        risk: d.gtids_at_risk || [],
        oldGtid: d.old_master_gtid || '',
        newGtid: d.new_master_gtid || '',
        id: d.id || '',
      };
    });
    renderInto('journal', $('journal'), rows, (list) => {
      if (!list.length) return h('p', { class: 'empty' }, 'No failover or switchover recorded.');
      return h('table', { class: 'grid', id: 'journal-table' },
        h('thead', {}, h('tr', {}, ['When', 'Kind', 'Old master', 'New master', 'Transactions at risk', 'Old master GTID', 'New master GTID', 'Why'].map((t) => h('th', {}, t)))),
        h('tbody', {}, list.map((r) => h('tr', { dataset: { kind: r.kind } },
          h('td', {}, when(r.time)),
          h('td', {}, badge(r.kind, r.kind === 'failover' ? 'warn' : 'info')),
          h('td', { class: 'mono' }, r.oldMaster),
          h('td', { class: 'mono' }, r.elected),
          h('td', { class: 'mono' }, r.risk.length ? h('span', { class: 'risk' }, r.risk.length + ': ' + r.risk.join(', ')) : h('span', { class: 'norisk' }, 'none')),
          h('td', { class: 'mono' }, r.oldGtid),
          h('td', { class: 'mono' }, r.newGtid),
          h('td', {}, r.trigger)))));
    });
  }

  function renderJobs(jobs, allowed) {
    const now = Math.floor(Date.now() / 1000);
    const rows = (jobs || []).slice().sort((a, b) => b.startedAt - a.startedAt).slice(0, 20).map((j) => ({
      id: j.id,
      kind: j.kind,
      server: j.server,
      state: j.state,
      size: j.sizeBytes,
      elapsed: (j.endedAt || now) - j.startedAt,
      error: j.error || '',
    }));
    renderInto('jobs', $('jobs'), { rows, allowed }, (m) => {
      if (!m.allowed) return h('p', { class: 'empty' }, 'Jobs need the cluster-process or db-backup grant.');
      if (!m.rows.length) return h('p', { class: 'empty' }, 'No job has run.');
      return h('table', { class: 'grid' },
        h('thead', {}, h('tr', {}, ['Job', 'Server', 'State', 'Progress', 'Elapsed', 'Size'].map((t) => h('th', {}, t)))),
        h('tbody', {}, m.rows.map((r) => h('tr', { dataset: { job: r.id, state: r.state } },
          h('td', {}, r.kind, h('div', { class: 'muted mono job-id' }, r.id)),
          h('td', { class: 'mono' }, r.server),
          h('td', {}, badge(r.state, r.state === 'done' ? 'ok' : r.state === 'failed' ? 'bad' : 'info'), r.error ? h('div', { class: 'error-text' }, r.error) : null),
          h('td', {}, h('div', { class: 'progress ' + r.state, title: r.state }, h('span', {}))),
          h('td', {}, duration(r.elapsed)),
          h('td', {}, bytes(r.size))))));
    });
  }

  // Whatever the proxies route returns, as a table of its fields.
  function renderProxies(proxies) {
    const list = Array.isArray(proxies) ? proxies : [];
    renderInto('proxies', $('proxies'), list, (l) => {
      if (!l.length) return h('p', { class: 'empty' }, 'No proxy is managed for this cluster.');
      const keys = [];
      for (const p of l) for (const k of Object.keys(p || {})) if (!keys.includes(k) && keys.length < 10) keys.push(k);
      const cell = (v) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v === undefined ? '' : v));
      return h('div', { class: 'scroll-x' }, h('table', { class: 'grid' },
        h('thead', {}, h('tr', {}, keys.map((k) => h('th', {}, k)))),
        h('tbody', {}, l.map((p) => h('tr', {}, keys.map((k) => h('td', { class: 'mono' }, cell((p || {})[k]))))))));
    });
  }

  function renderLog(lines) {
    const last = lines.slice(0, LOG_LINES);
    renderInto('log', $('log'), last, (l) => (l.length ? l.join('\n') : 'No log line yet.'));
  }

  function renderGroup() {
    const g = state.group;
    if (!g) return;
    const lost = state.clusters.some((c) => c.isLostMajority);
    const arbitrator = state.clusters.some((c) => c.isFailedArbitrator);
    const model = {
      nodeId: g.nodeId, status: g.status, st: g.state, term: g.term, leader: g.leader, split: g.splitBrain, lost, arbitrator,
      nodes: (g.nodes || []).map((n) => ({ id: n.id, role: n.role, raft: n.raftAddr, http: n.httpAddr, leader: n.isLeader, self: n.isSelf })),
    };
    renderInto('group', $('group'), model, (m) => {
      const forwarded = m.status !== 'A';
      return [
        h('div', { class: 'flags' },
          badge('this node ' + m.nodeId + ': ' + (m.status === 'A' ? 'A (active)' : 'S (standby)'), m.status === 'A' ? 'ok' : 'idle'),
          badge('term ' + m.term, 'idle'),
          badge(m.leader === null || m.leader === undefined ? 'no leader' : 'leader node ' + m.leader, m.leader === null || m.leader === undefined ? 'bad' : 'info'),
          badge(m.split ? 'split brain' : 'no split brain', m.split ? 'bad' : 'ok'),
          badge(m.lost ? 'lost majority' : 'majority reachable', m.lost ? 'bad' : 'ok'),
          m.arbitrator ? badge('arbitrator down', 'bad') : null),
        forwarded ? h('p', { class: 'muted' }, 'This node shows its own view; actions are forwarded to the leader.') : null,
        h('table', { class: 'grid', id: 'group-nodes' },
          h('thead', {}, h('tr', {}, ['Node', 'Role', 'Raft', 'HTTP API', ''].map((t) => h('th', {}, t)))),
          h('tbody', {}, m.nodes.map((n) => h('tr', { dataset: { node: n.id } },
            h('td', {}, 'node ' + n.id, n.self ? [' ', badge('this node', 'info')] : null, n.leader ? [' ', badge('leader', 'ok')] : null),
            h('td', {}, n.role),
            h('td', { class: 'mono' }, n.raft),
            h('td', { class: 'mono' }, n.http),
            h('td', {}, n.self || !n.http ? '' : h('a', { href: location.protocol + '//' + n.http + '/' }, 'open')))))),
      ];
    });
  }

  // ---- actions ---------------------------------------------------------------------------

  const ACTIONS = {
    switchover: { title: 'Switchover', text: (c) => 'Promote a replica of ' + c + ' to master; the current master becomes its replica.' },
    failover: { title: 'Failover', text: (c) => 'Elect the best replica of ' + c + ' and promote it now, whatever the state of the master.' },
    maintenance: { title: 'Maintenance', text: (c, s) => 'Toggle maintenance on ' + s + ' (a server in maintenance is never elected).' },
    'start-slave': { title: 'Start replication', text: (c, s) => 'START SLAVE on ' + s + '.' },
    'stop-slave': { title: 'Stop replication', text: (c, s) => 'STOP SLAVE on ' + s + '.' },
    'backup-logical': { title: 'Backup', text: (c, s) => 'Start a logical backup (mariadb-dump) of ' + s + '.' },
    reseed: { title: 'Reseed', text: (c, s) => 'Rebuild ' + s + ' from a dump: its data is replaced.' },
  };

  function confirmAction(kind, action, server) {
    const cluster = state.cluster;
    const spec = ACTIONS[action];
    const dialog = $('confirm-dialog');
    $('confirm-title').textContent = spec.title + (server ? ' · ' + server : ' · ' + cluster);
    $('confirm-text').textContent = spec.text(cluster, server);
    const select = $('confirm-target');
    select.replaceChildren();
    $('confirm-choice').hidden = true;
    if (action === 'switchover') {
      $('confirm-target-label').textContent = 'New master';
      select.append(h('option', { value: '' }, 'best candidate (elected by the manager)'));
      const masterUrl = state.master ? state.master.url : '';
      for (const s of state.servers) {
        if (s.url !== masterUrl) select.append(h('option', { value: s.url }, s.url + ' (' + s.state + ')'));
      }
      $('confirm-choice').hidden = false;
    } else if (action === 'reseed') {
      $('confirm-target-label').textContent = 'Source';
      select.append(h('option', { value: 'logicalmaster' }, 'a dump of the master now (logicalmaster)'));
      select.append(h('option', { value: 'logicalbackup' }, 'the latest logical backup (logicalbackup)'));
      $('confirm-choice').hidden = false;
    }
    state.pending = { cluster, action, server };
    dialog.showModal();
  }

  function onConfirm() {
    const p = state.pending;
    state.pending = null;
    $('confirm-dialog').close();
    if (!p) return;
    const choice = $('confirm-choice').hidden ? '' : $('confirm-target').value;
    runAction(p.cluster, p.action, p.server, choice);
  }

  function onCancel() {
    state.pending = null;
    $('confirm-dialog').close();
  }

  function actionRequest(cluster, action, server, choice) {
    const base = clusterPath(cluster);
    switch (action) {
      case 'switchover': return { path: base + '/actions/switchover', form: choice ? { prefmaster: choice } : undefined };
      case 'failover': return { path: base + '/actions/failover' };
      case 'reseed': return { path: base + '/servers/' + enc(server) + '/actions/reseed/' + enc(choice || 'logicalmaster') };
      default: return { path: base + '/servers/' + enc(server) + '/actions/' + action };
    }
  }

  function message(text, cls) {
    const el = $('message');
    el.textContent = text;
    el.className = 'message ' + cls;
    el.hidden = false;
  }

  // Runs an action (the page's buttons call it after their confirmation) and shows the API's
  // answer: its text on success, its status and message (e.g. `403 No valid ACL`) otherwise.
  async function runAction(cluster, action, server, choice) {
    const title = ACTIONS[action] ? ACTIONS[action].title : action;
    const what = title + (server ? ' of ' + server : ' on ' + cluster) + (choice ? ' (' + choice + ')' : '');
    message(what + ': running…', 'running');
    const req = actionRequest(cluster, action, server, choice);
    let r;
    try {
      r = await call('POST', req.path, { form: req.form, timeout: ACTION_TIMEOUT_MS });
    } catch (e) {
      if (e instanceof SessionEnded) return;
      message(what + ' failed: the manager did not answer (' + e.message + ')', 'error');
      return;
    }
    const served = r.servedBy ? ' [run by node ' + r.servedBy + ']' : '';
    if (r.ok) message(what + ': ' + r.text.trim() + served, 'ok');
    else message(what + ' refused (' + r.status + '): ' + r.text.trim() + served, 'error');
    state.rendered = {};
  }

  // For scripted use (and the browser tests): the same path a confirmed button takes.
  window.rmDashboard = { runAction: (action, server, choice) => runAction(state.cluster, action, server || '', choice || '') };

  // ---- start -----------------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    $('login-submit').addEventListener('click', login);
    $('login-password').addEventListener('keydown', (e) => { if (e.key === 'Enter') login(); });
    $('login-user').addEventListener('keydown', (e) => { if (e.key === 'Enter') $('login-password').focus(); });
    $('logout').addEventListener('click', () => logout(''));
    $('confirm-ok').addEventListener('click', onConfirm);
    $('confirm-cancel').addEventListener('click', onCancel);
    $('confirm-dialog').addEventListener('cancel', () => { state.pending = null; });
    show();
  });
})();
