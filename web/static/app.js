// The token management page. It is a client of the public REST API like
// any other: it sends the sign-in token only in the Authorization header,
// and it builds the page with textContent and createElement only, never
// with HTML strings (the Content-Security-Policy forbids those sinks).
'use strict';

(() => {
  // The sign-in token lives in sessionStorage: it survives a reload of the
  // tab, and it is gone when the tab closes. localStorage would keep it on
  // disk for every tab until someone signs out, a longer window for a thief
  // (see docs/WEB.md).
  const storageKey = 'tokenauth.session';
  const tokenName = 'Web page';

  const $ = (id) => document.getElementById(id);

  let session = readSession();

  function readSession() {
    try {
      const s = JSON.parse(sessionStorage.getItem(storageKey));
      return s && typeof s.token === 'string' ? s : null;
    } catch {
      return null;
    }
  }

  function setSession(s) {
    session = s;
    if (s) {
      sessionStorage.setItem(storageKey, JSON.stringify(s));
    } else {
      sessionStorage.removeItem(storageKey);
    }
  }

  // ApiError is an error answer of the API, or a failure to reach it
  // (status 0).
  class ApiError extends Error {
    constructor(status, body, headers) {
      super((body && body.error) || 'The server answered with an unexpected error (' + status + ').');
      this.status = status;
      this.body = body || {};
      this.code = (body && body.code) || '';
      this.fields = (body && body.fields) || {};
      const retry = headers ? Number.parseInt(headers.get('Retry-After'), 10) : NaN;
      this.retryAfter = Number.isFinite(retry) && retry > 0 ? retry : 0;
    }
  }

  // SessionEnded stops whatever was running after the sign-in token was
  // refused; the sign-in form is already showing by then.
  class SessionEnded extends Error {}

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (session) {
      headers.Authorization = 'Bearer ' + session.token;
    }
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch {
      throw new ApiError(0, { error: 'The server could not be reached. Check your connection and try again.', code: 'network' });
    }
    let data = null;
    if (resp.status !== 204) {
      try {
        data = await resp.json();
      } catch {
        data = null;
      }
    }
    if (!resp.ok) {
      throw new ApiError(resp.status, data, resp.headers);
    }
    return data;
  }

  // authed calls the API with the sign-in token; a 401 means the token
  // expired or was revoked (here or elsewhere), so the page goes back to
  // the sign-in form and says why. A 401 reauthentication_required is not
  // that: the token is fine, but the action needs a recent proof of the
  // password (step-up, RFC 9470). The page asks for it, sends it to
  // /api/reauth/, and tries the action again, once.
  async function authed(method, path, body) {
    try {
      return await api(method, path, body);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'reauthentication_required') {
        const proved = await reauthenticate();
        if (proved === null) {
          throw new SessionEnded();
        }
        if (!proved) {
          throw new ApiError(401, { code: 'reauth_cancelled', error: 'Nothing was changed: this needs your password again.' });
        }
        return authedOnce(method, path, body);
      }
      return sessionEnded(err);
    }
  }

  async function authedOnce(method, path, body) {
    try {
      return await api(method, path, body);
    } catch (err) {
      return sessionEnded(err);
    }
  }

  function sessionEnded(err) {
    if (err instanceof ApiError && err.status === 401 && err.code !== 'reauthentication_required') {
      signedOut('Your session has ended: it expired or was revoked. Sign in again.');
      throw new SessionEnded();
    }
    throw err;
  }

  // ---- re-authentication ----------------------------------------------

  // reauthenticate asks for the password (and a code, with two-factor
  // authentication on) in a modal dialog, and sends it until it is right
  // or the person cancels. It resolves to true once the proof is made,
  // false when the person cancels, and null when the session ended.
  let settleReauth = null;

  function reauthenticate() {
    const dialog = $('reauth');
    const form = $('reauth-form');
    form.reset();
    clearErrors(form);
    $('reauth-username').value = session ? session.username : '';
    $('reauth-code-field').hidden = !mfaEnabled;
    return new Promise((resolve) => {
      settleReauth = resolve;
      dialog.showModal();
      $('reauth-password').focus();
    });
  }

  function endReauth(ok) {
    const settle = settleReauth;
    settleReauth = null;
    if ($('reauth').open) {
      $('reauth').close();
    }
    if (settle) {
      settle(ok);
    }
  }

  async function sendReauth(event) {
    event.preventDefault();
    const form = $('reauth-form');
    clearErrors(form);
    const password = $('reauth-password');
    const code = $('reauth-code');
    const body = { password: password.value };
    if (mfaEnabled) {
      body.code = code.value.trim();
    }
    const submit = $('reauth-submit');
    submit.disabled = true;
    try {
      await api('POST', '/api/reauth/', body);
      form.reset();
      endReauth(true);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        endReauth(null);
        signedOut('Your session has ended: it expired or was revoked. Sign in again.');
        return;
      }
      showErrors(err, {
        password: [password, $('reauth-password-error'), 'Password'],
        code: [code, $('reauth-code-error'), 'Code'],
      }, $('reauth-error'));
    } finally {
      submit.disabled = false;
    }
  }

  // ---- messages -------------------------------------------------------

  // announce reads text out to screen readers. What it says is also shown
  // on the page, next to what it is about.
  function announce(text) {
    const status = $('status');
    status.textContent = '';
    // A fresh text node is announced even when the text repeats.
    window.setTimeout(() => { status.textContent = text; }, 50);
  }

  // done shows that something worked, next to it, and announces it.
  function done(el, text) {
    el.textContent = text;
    announce(text);
  }

  function waitText(seconds) {
    if (seconds < 60) {
      return seconds === 1 ? '1 second' : seconds + ' seconds';
    }
    const minutes = Math.ceil(seconds / 60);
    return minutes === 1 ? '1 minute' : minutes + ' minutes';
  }

  // messageFor turns an API error into a sentence for people.
  function messageFor(err) {
    if (!(err instanceof ApiError)) {
      return 'Something went wrong in this page: ' + err.message;
    }
    switch (err.code) {
      case 'invalid_credentials':
        return 'Wrong username or password.';
      case 'invalid_mfa_code':
        return 'That code is wrong or used already. Enter the code your app shows now.';
      case 'invalid_mfa_token':
        return 'This sign-in expired or had too many wrong codes. Sign in with your password again.';
      case 'rate_limited':
        return err.retryAfter
          ? 'Too many attempts. Try again in ' + waitText(err.retryAfter) + '.'
          : 'Too many attempts. Wait a little and try again.';
      case 'invalid_reset_token':
        return 'This link is invalid, used, replaced by a newer one, or expired. Ask for a new one.';
      case 'reauthentication_required':
        return 'This change needs your password again.';
      case 'ip_not_allowed':
        return 'This token may not be used from your address.';
      case 'invalid_verification_token':
        return 'This link is invalid, used, replaced by a newer one, or expired. Sign in and send a new one from your account.';
      default:
        return err.message;
    }
  }

  // A form's errors: one per field, under the field, and one for the form.
  function clearErrors(form) {
    for (const el of form.querySelectorAll('.field-error, .form-error, .form-ok')) {
      el.textContent = '';
    }
    for (const el of form.querySelectorAll('[aria-invalid]')) {
      el.removeAttribute('aria-invalid');
    }
  }

  function fieldError(input, errorEl, text) {
    errorEl.textContent = text;
    if (input) {
      input.setAttribute('aria-invalid', 'true');
    }
  }

  // showErrors puts each field error of a validation answer under its
  // field (fields maps the API's field names to [input, error element,
  // label]) and anything else in the form's error line. It focuses the
  // first field in error, or the form's error line.
  function showErrors(err, fields, formError) {
    let first = null;
    const unplaced = [];
    for (const [name, message] of Object.entries(err.fields || {})) {
      const target = fields[name];
      if (target) {
        fieldError(target[0], target[1], target[2] + ' ' + message + '.');
        first = first || target[0];
      } else {
        unplaced.push(name + ' ' + message + '.');
      }
    }
    if (err.code !== 'validation_failed' || unplaced.length > 0 || !first) {
      formError.textContent = unplaced.length > 0 ? unplaced.join(' ') : messageFor(err);
    }
    if (first) {
      first.focus();
    }
  }

  // ---- views ----------------------------------------------------------

  // One card shows at a time: sign-in, the forgotten password, the reset
  // and verify pages that links lead to, or the account.
  const views = ['signin-view', 'mfa-view', 'forgot-view', 'reset-view', 'verify-view', 'tokens-view'];

  function showOnly(id) {
    for (const v of views) {
      $(v).hidden = v !== id;
    }
    $('account').hidden = id !== 'tokens-view';
  }

  // leaveLinkPage puts the address back to the page itself once a link's
  // page is done with.
  function leaveLinkPage() {
    if (location.pathname !== '/') {
      history.replaceState(null, '', '/');
    }
  }

  // showSignIn shows the sign-in form. After a sign-out the focus goes to
  // the heading, so a screen reader reads the notice that follows it; on
  // arrival it goes straight to the username.
  function showSignIn(notice) {
    showOnly('signin-view');
    hideRegister();
    const n = $('signin-notice');
    n.textContent = notice || '';
    n.hidden = !notice;
    $('signin-password').value = '';
    if (notice) {
      $('signin-title').focus();
    } else {
      $('signin-username').focus();
    }
  }

  function signedOut(notice) {
    setSession(null);
    mfaToken = '';
    hideRecoveryCodes();
    cancelEnrolment();
    $('list-ok').textContent = '';
    $('email-pending').hidden = true;
    hideSecret();
    $('token-rows').replaceChildren();
    for (const form of document.querySelectorAll('form')) {
      form.reset();
      clearErrors(form);
    }
    syncScopes();
    showSignIn(notice);
  }

  // The registration form is on the page only when the service lets
  // anyone register (ALLOW_REGISTRATION); otherwise the sign-in form says
  // who creates accounts.
  function hideRegister() {
    if ($('register-view')) {
      $('register-view').hidden = true;
    }
  }

  function showRegister() {
    $('signin-view').hidden = true;
    $('register-view').hidden = false;
    $('register-username').value = $('signin-username').value;
    $('register-title').focus();
  }

  async function showTokens() {
    showOnly('tokens-view');
    hideRegister();
    $('whoami').textContent = session.username;
    $('password-username').value = session.username;
    $('tokens-title').focus();
    activityPage = 1;
    await loadTokens();
    await loadProfile();
  }

  // ---- sign in and out ------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const form = $('signin-form');
    const username = $('signin-username');
    const password = $('signin-password');
    clearErrors(form);
    const fields = {
      username: [username, $('signin-username-error'), 'Username'],
      password: [password, $('signin-password-error'), 'Password'],
    };
    const submit = $('signin-submit');
    submit.disabled = true;
    try {
      const data = await api('POST', '/api/login/', {
        username: username.value, password: password.value, token_name: tokenName,
      });
      password.value = '';
      $('signin-notice').hidden = true;
      submit.disabled = false;
      await signedIn(data);
    } catch (err) {
      submit.disabled = false;
      if (err.code === 'mfa_required') {
        password.value = '';
        showMFAStep(err.body.mfa_token);
        return;
      }
      if (err.code === 'invalid_credentials') {
        fieldError(password, $('signin-password-error'), messageFor(err));
        password.select();
        password.focus();
        return;
      }
      showErrors(err, fields, $('signin-error'));
    }
  }

  // register creates the account, then signs in with it as the sign-in
  // form would. If the account was made but the sign-in is refused, the
  // sign-in form says so and keeps the username.
  async function register(event) {
    event.preventDefault();
    const form = $('register-form');
    clearErrors(form);
    const username = $('register-username');
    const email = $('register-email');
    const password = $('register-password');
    const confirm = $('register-confirm');
    if (password.value !== confirm.value) {
      fieldError(confirm, $('register-confirm-error'), 'The two passwords differ.');
      confirm.focus();
      return;
    }
    const fields = {
      username: [username, $('register-username-error'), 'Username'],
      email: [email, $('register-email-error'), 'Email'],
      password: [password, $('register-password-error'), 'Password'],
    };
    const submit = $('register-submit');
    submit.disabled = true;
    let created = false;
    try {
      const { user } = await api('POST', '/api/register/', {
        username: username.value, email: email.value, password: password.value,
      });
      created = true;
      const data = await api('POST', '/api/login/', {
        username: user.username, password: password.value, token_name: tokenName,
      });
      setSession({ token: data.token, username: data.user.username, expiresAt: data.expires_at });
      form.reset();
      await showTokens();
    } catch (err) {
      if (!created && err.code === 'conflict') {
        fieldError(username, $('register-username-error'), 'This username is taken: choose another.');
        username.focus();
        return;
      }
      if (!created) {
        showErrors(err, fields, $('register-error'));
        return;
      }
      const name = username.value;
      form.reset();
      showSignIn('Your account ' + name + ' is created, but signing in failed: ' + messageFor(err));
      $('signin-username').value = name;
    } finally {
      submit.disabled = false;
    }
  }

  async function signedIn(data) {
    setSession({ token: data.token, username: data.user.username, expiresAt: data.expires_at });
    await showTokens();
  }

  // ---- the second step of a sign-in -----------------------------------

  // The mfa_token of the password step lives in memory only, for the few
  // minutes the server gives it.
  let mfaToken = '';
  let mfaWithRecovery = false;

  function showMFAStep(token) {
    mfaToken = token;
    showOnly('mfa-view');
    const form = $('mfa-form');
    form.reset();
    clearErrors(form);
    setMFAMethod(false);
  }

  function setMFAMethod(recovery) {
    mfaWithRecovery = recovery;
    $('mfa-code-field').hidden = recovery;
    $('mfa-recovery-field').hidden = !recovery;
    $('mfa-switch').textContent = recovery ? 'Use a code from your app instead' : 'Use a recovery code instead';
    (recovery ? $('mfa-recovery') : $('mfa-code')).focus();
  }

  async function sendMFA(event) {
    event.preventDefault();
    const form = $('mfa-form');
    clearErrors(form);
    const input = mfaWithRecovery ? $('mfa-recovery') : $('mfa-code');
    const errorEl = mfaWithRecovery ? $('mfa-recovery-error') : $('mfa-code-error');
    const value = input.value.trim();
    if (value === '') {
      fieldError(input, errorEl, mfaWithRecovery ? 'Enter one of your recovery codes.' : 'Enter the code your app shows.');
      input.focus();
      return;
    }
    const body = { mfa_token: mfaToken };
    body[mfaWithRecovery ? 'recovery_code' : 'code'] = value;
    const submit = $('mfa-submit');
    submit.disabled = true;
    try {
      const data = await api('POST', '/api/login/mfa/', body);
      mfaToken = '';
      form.reset();
      await signedIn(data);
    } catch (err) {
      if (err.code === 'invalid_mfa_token') {
        mfaToken = '';
        showSignIn(messageFor(err));
        return;
      }
      if (err.code === 'invalid_mfa_code') {
        fieldError(input, errorEl, messageFor(err));
        input.select();
        input.focus();
        return;
      }
      const target = [input, errorEl, mfaWithRecovery ? 'Recovery code' : 'Code'];
      showErrors(err, { code: target, recovery_code: target }, $('mfa-error'));
    } finally {
      submit.disabled = false;
    }
  }

  async function signOut() {
    try {
      await api('POST', '/api/logout/');
    } catch {
      // The token is dropped here whatever the server said: a token the
      // server refuses is as good as signed out.
    }
    signedOut('You have signed out.');
  }

  async function signOutEverywhere() {
    const ok = await confirmAction('Sign out everywhere?',
      'Every token of your account stops working at once, this session included.', 'Sign out everywhere');
    if (!ok) {
      $('logout-all').focus();
      return;
    }
    $('everywhere-error').textContent = '';
    try {
      await authed('POST', '/api/logout-all/');
      signedOut('You have signed out everywhere: every token of your account is revoked.');
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        $('everywhere-error').textContent = messageFor(err);
      }
    }
  }

  // ---- the list of tokens ---------------------------------------------

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

  function timeCell(label, iso, none) {
    const td = document.createElement('td');
    td.dataset.label = label;
    if (!iso) {
      td.textContent = none;
      return td;
    }
    const t = document.createElement('time');
    t.dateTime = iso;
    t.textContent = dateFormat.format(new Date(iso));
    td.append(t);
    return td;
  }

  function timeElement(iso) {
    const t = document.createElement('time');
    t.dateTime = iso;
    t.textContent = dateFormat.format(new Date(iso));
    return t;
  }

  // lastUsedCell says when, from where and with which client the token was
  // last used.
  function lastUsedCell(tok) {
    const td = timeCell('Last used', tok.last_used_at, 'Never');
    if (tok.last_used_at && tok.last_ip) {
      const where = document.createElement('p');
      where.className = 'muted';
      where.textContent = 'from ' + tok.last_ip;
      td.append(where);
      if (tok.last_user_agent) {
        // The whole User-Agent is in the tooltip; the cell shows its start.
        const agent = document.createElement('p');
        agent.className = 'muted';
        agent.title = tok.last_user_agent;
        agent.textContent = tok.last_user_agent.length > 32 ? tok.last_user_agent.slice(0, 31) + '…' : tok.last_user_agent;
        td.append(agent);
      }
    }
    if (tok.networks && tok.networks.length > 1) {
      const nets = document.createElement('p');
      nets.className = 'muted';
      nets.textContent = 'Recent networks: ' + tok.networks.map((n) => n.network).join(', ');
      td.append(nets);
    }
    return td;
  }

  const periodNames = { '1s': 'second', '1m': 'minute', '1h': 'hour', '24h': 'day' };

  function limitText(tok) {
    const parts = [];
    if (tok.allowed_ips && tok.allowed_ips.length > 0) {
      parts.push('Only from ' + tok.allowed_ips.join(', '));
    }
    if (tok.rate_limit) {
      parts.push(tok.rate_limit.requests + ' requests per ' + (periodNames[tok.rate_limit.per] || tok.rate_limit.per));
    }
    return parts.join('; ');
  }

  function tokenRow(tok) {
    const tr = document.createElement('tr');
    tr.dataset.tokenId = String(tok.id);

    const name = document.createElement('td');
    name.dataset.label = 'Name';
    const strong = document.createElement('strong');
    strong.textContent = tok.name;
    const prefix = document.createElement('code');
    prefix.className = 'prefix';
    prefix.textContent = tok.prefix + '…';
    name.append(strong, ' ', prefix);
    if (tok.current) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'this session';
      name.append(' ', badge);
    }

    if (!tok.enabled) {
      const badge = document.createElement('span');
      badge.className = 'badge warn';
      badge.textContent = 'paused';
      name.append(' ', badge);
    }
    if (tok.previous_secret_expires_at) {
      const grace = document.createElement('p');
      grace.className = 'muted';
      grace.append('Previous secret works until ', timeElement(tok.previous_secret_expires_at));
      name.append(grace);
    }

    const scopes = document.createElement('td');
    scopes.dataset.label = 'Scopes';
    for (const s of tok.scopes) {
      const code = document.createElement('code');
      code.className = 'scope';
      code.textContent = s === '*' ? '* (full access)' : s;
      scopes.append(code, ' ');
    }
    const limits = limitText(tok);
    if (limits) {
      const p = document.createElement('p');
      p.className = 'muted limits';
      p.textContent = limits;
      scopes.append(p);
    }

    const actions = document.createElement('td');
    actions.className = 'actions';
    if (tok.current) {
      const note = document.createElement('span');
      note.className = 'muted';
      note.textContent = 'Sign out to revoke';
      actions.append(note);
    } else {
      const pause = document.createElement('button');
      pause.type = 'button';
      pause.className = 'small';
      pause.textContent = tok.enabled ? 'Pause' : 'Resume';
      pause.setAttribute('aria-label', (tok.enabled ? 'Pause' : 'Resume') + ' token ' + tok.name);
      pause.addEventListener('click', () => setEnabled(tok, !tok.enabled, pause));
      const edit = document.createElement('button');
      edit.type = 'button';
      edit.className = 'small';
      edit.textContent = 'Limits';
      edit.setAttribute('aria-label', 'Edit the limits of token ' + tok.name);
      edit.addEventListener('click', () => openEdit(tok, edit));
      actions.append(pause, ' ', edit, ' ');
      const revoke = document.createElement('button');
      revoke.type = 'button';
      revoke.className = 'danger small';
      revoke.textContent = 'Revoke';
      revoke.setAttribute('aria-label', 'Revoke token ' + tok.name);
      revoke.addEventListener('click', () => revokeToken(tok, revoke));
      actions.append(revoke);
    }

    tr.append(name, scopes,
      timeCell('Created', tok.created_at, ''),
      lastUsedCell(tok),
      timeCell('Expires', tok.expires_at, 'Never'),
      actions);
    return tr;
  }

  async function loadTokens() {
    const error = $('list-error');
    error.textContent = '';
    try {
      const data = await authed('GET', '/api/tokens/');
      $('token-rows').replaceChildren(...data.tokens.map(tokenRow));
      $('token-empty').hidden = data.tokens.length > 0;
      // What was just done to a token shows in the activity too.
      await loadActivity(activityPage);
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        error.textContent = messageFor(err);
      }
    }
  }

  async function revokeToken(tok, button) {
    const ok = await confirmAction('Revoke “' + tok.name + '”?',
      'Anything that uses this token stops working at once. This cannot be undone.', 'Revoke token');
    if (!ok) {
      button.focus();
      return;
    }
    const error = $('list-error');
    error.textContent = '';
    $('list-ok').textContent = '';
    try {
      await authed('DELETE', '/api/tokens/' + encodeURIComponent(tok.id) + '/');
      done($('list-ok'), 'Token “' + tok.name + '” revoked.');
    } catch (err) {
      if (err instanceof SessionEnded) {
        return;
      }
      if (err.status === 404) {
        done($('list-ok'), 'Token “' + tok.name + '” was already gone.');
      } else {
        error.textContent = messageFor(err);
      }
    }
    await loadTokens();
    $('list-title').focus();
  }

  // ---- pausing and limiting a token -----------------------------------

  function splitIPs(text) {
    return text.split(/[\s,]+/).map((x) => x.trim()).filter((x) => x !== '');
  }

  async function setEnabled(tok, enabled, button) {
    const error = $('list-error');
    error.textContent = '';
    $('list-ok').textContent = '';
    try {
      await authed('PATCH', '/api/tokens/' + encodeURIComponent(tok.id) + '/', { enabled });
      done($('list-ok'), 'Token “' + tok.name + '” ' + (enabled ? 'resumed.' : 'paused: it is refused until you resume it.'));
    } catch (err) {
      if (err instanceof SessionEnded) {
        return;
      }
      error.textContent = messageFor(err);
    }
    await loadTokens();
    const again = document.querySelector('#token-rows tr[data-token-id="' + tok.id + '"] .actions button');
    (again || button).focus();
  }

  let editing = null;

  function openEdit(tok, button) {
    editing = { tok, button };
    const form = $('edit-form');
    clearErrors(form);
    $('edit-name').textContent = tok.name;
    $('edit-ips').value = (tok.allowed_ips || []).join('\n');
    $('edit-limit-requests').value = tok.rate_limit ? String(tok.rate_limit.requests) : '';
    $('edit-limit-per').value = tok.rate_limit && periodNames[tok.rate_limit.per] ? tok.rate_limit.per : '1m';
    $('edit-panel').hidden = false;
    $('edit-title').focus();
  }

  function closeEdit() {
    $('edit-panel').hidden = true;
    if (editing && editing.button.isConnected) {
      editing.button.focus();
    }
    editing = null;
  }

  async function saveEdit(event) {
    event.preventDefault();
    if (!editing) {
      return;
    }
    const form = $('edit-form');
    clearErrors(form);
    const requests = $('edit-limit-requests');
    const body = { allowed_ips: splitIPs($('edit-ips').value), rate_limit: null };
    if (requests.value !== '') {
      const n = Number(requests.value);
      if (!Number.isInteger(n) || n < 1) {
        fieldError(requests, $('edit-limit-error'), 'The rate limit must be a whole number of requests, at least 1.');
        requests.focus();
        return;
      }
      body.rate_limit = { requests: n, per: $('edit-limit-per').value };
    }
    const fields = {
      allowed_ips: [$('edit-ips'), $('edit-ips-error'), 'Allowed IP addresses:'],
      'rate_limit.per': [$('edit-limit-per'), $('edit-limit-error'), 'Rate limit:'],
      requests: [requests, $('edit-limit-error'), 'Rate limit:'],
    };
    const tok = editing.tok;
    const submit = $('edit-submit');
    submit.disabled = true;
    try {
      await authed('PATCH', '/api/tokens/' + encodeURIComponent(tok.id) + '/', body);
      $('edit-panel').hidden = true;
      editing = null;
      await loadTokens();
      done($('list-ok'), 'Limits of “' + tok.name + '” saved.');
      $('list-title').focus();
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        showErrors(err, fields, $('edit-error'));
      }
    } finally {
      submit.disabled = false;
    }
  }

  // ---- recent activity ------------------------------------------------

  const eventNames = {
    login_succeeded: 'Signed in',
    login_failed: 'Failed sign-in',
    login_rate_limited: 'Sign-in refused: too many attempts',
    token_created: 'Token created',
    token_rotated: 'Token rotated',
    token_renamed: 'Token renamed',
    token_revoked: 'Token revoked',
    token_paused: 'Token paused',
    token_resumed: 'Token resumed',
    token_restrictions_changed: 'Token limits changed',
    token_used_from_new_network: 'Token used from a new network',
    token_ip_refused: 'Token refused: address not allowed',
    token_expired: 'Old token secret refused after its grace',
    password_changed: 'Password changed',
    password_reset_requested: 'Password reset requested',
    password_reset: 'Password reset',
    email_verification_sent: 'Verification link sent',
    email_verified: 'Email address verified',
    email_change_requested: 'Email change requested',
    email_changed: 'Email address changed',
    reauthenticated: 'Password confirmed',
    mfa_enabled: 'Two-factor authentication turned on',
    mfa_disabled: 'Two-factor authentication turned off',
    recovery_codes_regenerated: 'New recovery codes made',
    recovery_code_used: 'Recovery code used',
    mfa_failed: 'Wrong two-factor code',
    account_deactivated: 'Account deactivated',
    account_activated: 'Account activated',
  };

  let activityPage = 1;

  function eventItem(e) {
    const li = document.createElement('li');
    const what = document.createElement('strong');
    what.textContent = eventNames[e.type] || e.type.replaceAll('_', ' ');
    li.append(timeElement(e.created_at), ' ', what);
    if (e.new_client) {
      const badge = document.createElement('span');
      badge.className = 'badge warn';
      badge.textContent = 'new device';
      li.append(' ', badge);
    }
    const detail = [];
    if (e.reason) {
      detail.push('reason: ' + e.reason.replaceAll('_', ' '));
    }
    if (e.ip) {
      detail.push('from ' + e.ip);
    }
    if (e.user_agent) {
      detail.push(e.user_agent);
    }
    if (detail.length > 0) {
      const p = document.createElement('p');
      p.className = 'muted';
      p.textContent = detail.join(' · ');
      li.append(p);
    }
    return li;
  }

  async function loadActivity(page) {
    const error = $('activity-error');
    error.textContent = '';
    try {
      const data = await authed('GET', '/api/security-events/?page=' + page + '&page_size=10');
      activityPage = page;
      $('activity-list').replaceChildren(...data.events.map(eventItem));
      $('activity-empty').hidden = data.events.length > 0;
      $('activity-newer').disabled = page <= 1;
      $('activity-older').disabled = !data.next_page;
      const pages = Math.max(1, Math.ceil(data.total / data.page_size));
      $('activity-page').textContent = 'Page ' + page + ' of ' + pages;
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        error.textContent = messageFor(err);
      }
    }
  }

  // ---- creating a token -----------------------------------------------

  function syncScopes() {
    $('create-scopes').disabled = !$('create-limited').checked;
  }

  async function createToken(event) {
    event.preventDefault();
    const form = $('create-form');
    clearErrors(form);
    const name = $('create-name');
    const days = $('create-days');
    const fields = {
      name: [name, $('create-name-error'), 'Name'],
      scopes: [$('create-limited'), $('create-scopes-error'), 'Scopes'],
      expires_in_days: [days, $('create-days-error'), 'Expiry'],
      allowed_ips: [$('create-ips'), $('create-ips-error'), 'Allowed IP addresses:'],
      'rate_limit.per': [$('create-limit-per'), $('create-limit-error'), 'Rate limit:'],
      requests: [$('create-limit-requests'), $('create-limit-error'), 'Rate limit:'],
    };
    const body = { name: name.value.trim() };
    if (body.name === '') {
      fieldError(name, $('create-name-error'), 'Give the token a name, so you know later what uses it.');
      name.focus();
      return;
    }
    if ($('create-limited').checked) {
      body.scopes = [...form.querySelectorAll('input[name=scopes]:checked')].map((c) => c.value);
      if (body.scopes.length === 0) {
        fieldError($('create-limited'), $('create-scopes-error'), 'Choose at least one scope, or full access.');
        $('create-limited').focus();
        return;
      }
    }
    const ips = splitIPs($('create-ips').value);
    if (ips.length > 0) {
      body.allowed_ips = ips;
    }
    const requests = $('create-limit-requests');
    if (requests.value !== '') {
      const n = Number(requests.value);
      if (!Number.isInteger(n) || n < 1) {
        fieldError(requests, $('create-limit-error'), 'The rate limit must be a whole number of requests, at least 1.');
        requests.focus();
        return;
      }
      body.rate_limit = { requests: n, per: $('create-limit-per').value };
    }
    if (days.value !== '') {
      const n = Number(days.value);
      if (!Number.isInteger(n) || n < 1) {
        fieldError(days, $('create-days-error'), 'Expiry must be a whole number of days, at least 1.');
        days.focus();
        return;
      }
      body.expires_in_days = n;
    }
    const submit = $('create-submit');
    submit.disabled = true;
    try {
      const tok = await authed('POST', '/api/tokens/', body);
      form.reset();
      syncScopes();
      showSecret(tok);
      await loadTokens();
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        showErrors(err, fields, $('create-error'));
      }
    } finally {
      submit.disabled = false;
    }
  }

  function showSecret(tok) {
    $('secret-name').textContent = tok.name;
    const value = $('secret-value');
    value.value = tok.token;
    $('secret-panel').hidden = false;
    $('secret-title').focus();
    announce('Token “' + tok.name + '” created. Copy it now: it is shown only once.');
  }

  function hideSecret() {
    $('secret-value').value = '';
    $('secret-panel').hidden = true;
  }

  async function copySecret() {
    const value = $('secret-value');
    value.focus();
    value.select();
    try {
      await navigator.clipboard.writeText(value.value);
      announce('Copied to the clipboard.');
    } catch {
      announce('Copying is not allowed here: the token is selected, press Ctrl+C (or ⌘C) to copy it.');
    }
  }

  // ---- changing the password ------------------------------------------

  async function changePassword(event) {
    event.preventDefault();
    const form = $('password-form');
    clearErrors(form);
    const current = $('password-current');
    const next = $('password-new');
    const confirm = $('password-confirm');
    if (next.value !== confirm.value) {
      fieldError(confirm, $('password-confirm-error'), 'The two new passwords differ.');
      confirm.focus();
      return;
    }
    const fields = {
      current_password: [current, $('password-current-error'), 'Current password'],
      new_password: [next, $('password-new-error'), 'New password'],
    };
    const submit = $('password-submit');
    submit.disabled = true;
    try {
      await authed('POST', '/api/password/', { current_password: current.value, new_password: next.value });
      form.reset();
      $('password-username').value = session.username;
      done($('password-ok'), 'Password changed. Every other session and token of your account is revoked.');
      await loadTokens();
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        showErrors(err, fields, $('password-error'));
      }
    } finally {
      submit.disabled = false;
    }
  }

  // ---- a forgotten password -------------------------------------------

  function showForgot() {
    showOnly('forgot-view');
    const form = $('forgot-form');
    form.reset();
    clearErrors(form);
    $('forgot-who').value = $('signin-username').value;
    $('forgot-who').focus();
  }

  // requestReset asks for a reset link. The answer is the same whether an
  // account matches or not, and so is what the page says.
  async function requestReset(event) {
    event.preventDefault();
    const form = $('forgot-form');
    clearErrors(form);
    const who = $('forgot-who');
    const value = who.value.trim();
    if (value === '') {
      fieldError(who, $('forgot-who-error'), 'Give your email address or your username.');
      who.focus();
      return;
    }
    const body = value.includes('@') ? { email: value } : { username: value };
    const submit = $('forgot-submit');
    submit.disabled = true;
    try {
      await api('POST', '/api/password-reset/', body);
      done($('forgot-ok'), 'If an account matches, a link is on its way to its address. Check your mail; the link works once.');
    } catch (err) {
      const target = [who, $('forgot-who-error'), value.includes('@') ? 'Email address' : 'Username'];
      showErrors(err, { email: target, username: target }, $('forgot-error'));
    } finally {
      submit.disabled = false;
    }
  }

  // The token of a link is in the address's fragment, which the browser
  // never sends to a server; the page takes it and drops it from the
  // address bar and the history at once.
  let resetToken = '';

  function showReset(token) {
    resetToken = token;
    showOnly('reset-view');
    const form = $('reset-form');
    form.reset();
    clearErrors(form);
    if (!token) {
      $('reset-error').textContent = 'This link has no token: open the whole link from the mail, or ask for a new one.';
    }
    $('reset-new').focus();
  }

  async function resetPassword(event) {
    event.preventDefault();
    const form = $('reset-form');
    clearErrors(form);
    const next = $('reset-new');
    const confirm = $('reset-confirm');
    if (next.value !== confirm.value) {
      fieldError(confirm, $('reset-confirm-error'), 'The two new passwords differ.');
      confirm.focus();
      return;
    }
    const submit = $('reset-submit');
    submit.disabled = true;
    try {
      await api('POST', '/api/password-reset/confirm/', { token: resetToken, new_password: next.value });
      resetToken = '';
      form.reset();
      leaveLinkPage();
      setSession(null);
      showSignIn('Your password is changed, and every session and token of your account is signed out. Sign in with your new password.');
    } catch (err) {
      showErrors(err, { new_password: [next, $('reset-new-error'), 'New password'] }, $('reset-error'));
    } finally {
      submit.disabled = false;
    }
  }

  // ---- the email address ----------------------------------------------

  async function verifyEmail(token) {
    showOnly('verify-view');
    $('verify-ok').textContent = '';
    $('verify-error').textContent = '';
    $('verify-title').focus();
    if (!token) {
      $('verify-error').textContent = 'This link has no token: open the whole link from the mail.';
      return;
    }
    try {
      await api('POST', '/api/email/verify/confirm/', { token });
      done($('verify-ok'), 'Your email address is verified.');
    } catch (err) {
      $('verify-error').textContent = messageFor(err);
    }
  }

  function continueFromVerify() {
    leaveLinkPage();
    if (session) {
      showTokens();
    } else {
      showSignIn();
    }
  }

  function showEmail(profile) {
    $('email-address').textContent = profile.email || 'no address';
    const state = $('email-state');
    state.textContent = profile.email_verified ? 'verified' : 'not verified';
    state.classList.toggle('warn', !profile.email_verified);
    $('email-verify-row').hidden = profile.email_verified || !profile.email;
  }

  async function loadProfile() {
    try {
      const profile = await authed('GET', '/api/profile/');
      showEmail(profile);
      showTwoFactor(profile.mfa_enabled);
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        $('email-error').textContent = messageFor(err);
      }
    }
  }

  async function sendVerification() {
    $('email-ok').textContent = '';
    $('email-error').textContent = '';
    const button = $('email-verify');
    button.disabled = true;
    try {
      await authed('POST', '/api/email/verify/');
      done($('email-ok'), 'A new link is on its way to ' + $('email-address').textContent + '. It works for a day.');
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        $('email-error').textContent = messageFor(err);
      }
    } finally {
      button.disabled = false;
    }
  }

  async function changeEmail(event) {
    event.preventDefault();
    const form = $('email-form');
    clearErrors(form);
    $('email-ok').textContent = '';
    $('email-error').textContent = '';
    const input = $('email-new');
    const email = input.value.trim();
    if (email === '') {
      fieldError(input, $('email-new-error'), 'Give the new address.');
      input.focus();
      return;
    }
    const submit = $('email-submit');
    submit.disabled = true;
    try {
      const data = await authed('PATCH', '/api/profile/', { email });
      form.reset();
      if (data.pending_email) {
        const pending = $('email-pending');
        pending.textContent = 'Follow the link we mailed to ' + data.pending_email + ' to make it your address. ' +
          'Until then your address stays ' + data.user.email + '.';
        pending.hidden = false;
        announce(pending.textContent);
        showEmail(data.user);
      } else {
        done($('email-ok'), 'That is your address already.');
        showEmail(data);
      }
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        showErrors(err, { email: [input, $('email-new-error'), 'New email address'] }, $('email-error'));
      }
    } finally {
      submit.disabled = false;
    }
  }

  // ---- two-factor authentication --------------------------------------

  let mfaEnabled = false;

  function showTwoFactor(on) {
    mfaEnabled = on;
    const state = $('twofa-state');
    state.textContent = on ? 'on' : 'off';
    state.classList.toggle('warn', !on);
    $('twofa-on').hidden = !on;
    $('twofa-off').hidden = on;
    if (on) {
      $('twofa-enrol').hidden = true;
    }
  }

  function twoFactorMessages() {
    $('twofa-ok').textContent = '';
    $('twofa-error').textContent = '';
  }

  async function startTwoFactor() {
    twoFactorMessages();
    const button = $('twofa-start');
    button.disabled = true;
    try {
      const e = await authed('POST', '/api/mfa/totp/');
      $('twofa-qr').src = e.qr;
      $('twofa-secret').textContent = e.secret;
      const form = $('twofa-form');
      form.reset();
      clearErrors(form);
      $('twofa-off').hidden = true;
      $('twofa-enrol').hidden = false;
      $('twofa-enrol-title').focus();
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        $('twofa-error').textContent = messageFor(err);
      }
    } finally {
      button.disabled = false;
    }
  }

  function cancelEnrolment() {
    $('twofa-enrol').hidden = true;
    $('twofa-qr').removeAttribute('src');
    $('twofa-secret').textContent = '';
  }

  function cancelTwoFactor() {
    $('twofa-enrol').hidden = true;
    $('twofa-qr').removeAttribute('src');
    $('twofa-secret').textContent = '';
    $('twofa-off').hidden = false;
    $('twofa-start').focus();
  }

  async function confirmTwoFactor(event) {
    event.preventDefault();
    const form = $('twofa-form');
    clearErrors(form);
    twoFactorMessages();
    const code = $('twofa-code');
    if (code.value.trim() === '') {
      fieldError(code, $('twofa-code-error'), 'Enter the code your app shows.');
      code.focus();
      return;
    }
    const submit = $('twofa-confirm');
    submit.disabled = true;
    try {
      const data = await authed('POST', '/api/mfa/totp/confirm/', { code: code.value.trim() });
      form.reset();
      $('twofa-enrol').hidden = true;
      $('twofa-qr').removeAttribute('src');
      $('twofa-secret').textContent = '';
      showTwoFactor(true);
      showRecoveryCodes(data.recovery_codes);
      await loadTokens();
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        showErrors(err, { code: [code, $('twofa-code-error'), 'Code'] }, $('twofa-error'));
      }
    } finally {
      submit.disabled = false;
    }
  }

  let recoveryCodes = [];

  function showRecoveryCodes(codes) {
    recoveryCodes = codes;
    $('recovery-codes').replaceChildren(...codes.map((c) => {
      const li = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = c;
      li.append(code);
      return li;
    }));
    $('recovery-panel').hidden = false;
    $('recovery-title').focus();
    announce('Two-factor authentication is on. Save your recovery codes now: they are shown only once.');
  }

  function hideRecoveryCodes() {
    recoveryCodes = [];
    $('recovery-codes').replaceChildren();
    $('recovery-panel').hidden = true;
  }

  function downloadRecoveryCodes() {
    const text = 'tokenauth recovery codes for ' + (session ? session.username : '') + ' (' + location.origin + ')\n' +
      'Each code works once.\n\n' + recoveryCodes.join('\n') + '\n';
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = 'tokenauth-recovery-codes.txt';
    document.body.append(a);
    a.click();
    a.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  async function regenerateRecoveryCodes() {
    const ok = await confirmAction('Make new recovery codes?',
      'Your present recovery codes stop working at once.', 'Make new codes');
    if (!ok) {
      $('twofa-regenerate').focus();
      return;
    }
    twoFactorMessages();
    try {
      const data = await authed('POST', '/api/mfa/recovery-codes/');
      showRecoveryCodes(data.recovery_codes);
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        $('twofa-error').textContent = messageFor(err);
      }
    }
  }

  async function disableTwoFactor() {
    const ok = await confirmAction('Turn two-factor authentication off?',
      'Signing in will take only your password. Your recovery codes stop working.', 'Turn off');
    if (!ok) {
      $('twofa-disable').focus();
      return;
    }
    twoFactorMessages();
    try {
      await authed('DELETE', '/api/mfa/totp/');
      hideRecoveryCodes();
      showTwoFactor(false);
      done($('twofa-ok'), 'Two-factor authentication is off.');
      $('twofa-start').focus();
    } catch (err) {
      if (!(err instanceof SessionEnded)) {
        $('twofa-error').textContent = messageFor(err);
      }
    }
  }

  // ---- confirmation ---------------------------------------------------

  // confirmAction asks in a modal dialog, which keeps the focus inside it
  // and closes with Escape; it resolves to true when the person confirms.
  //
  // The dialog's close event comes a task after the dialog closed, so it
  // can arrive after the dialog opened again (closed with Escape, then
  // reopened at once). One pending answer at a time, and a close event
  // while the dialog is open is that stale one: ignored.
  let settleConfirm = null;
  $('confirm').addEventListener('close', () => {
    const dialog = $('confirm');
    if (dialog.open || !settleConfirm) {
      return;
    }
    const settle = settleConfirm;
    settleConfirm = null;
    settle(dialog.returnValue === 'ok');
  });

  function confirmAction(title, text, action) {
    const dialog = $('confirm');
    if (settleConfirm) {
      // The previous dialog closed; its close event is still on its way.
      settleConfirm(dialog.returnValue === 'ok');
    }
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = action;
    dialog.returnValue = '';
    return new Promise((resolve) => {
      settleConfirm = resolve;
      dialog.showModal();
    });
  }

  // ---- wiring ---------------------------------------------------------

  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('logout-all').addEventListener('click', signOutEverywhere);
  $('refresh').addEventListener('click', async () => {
    $('list-ok').textContent = '';
    await loadTokens();
    announce('Token list refreshed.');
  });
  $('create-form').addEventListener('submit', createToken);
  $('edit-form').addEventListener('submit', saveEdit);
  $('edit-cancel').addEventListener('click', closeEdit);
  $('activity-refresh').addEventListener('click', () => loadActivity(activityPage));
  $('activity-newer').addEventListener('click', () => loadActivity(Math.max(1, activityPage - 1)));
  $('activity-older').addEventListener('click', () => loadActivity(activityPage + 1));
  $('create-full').addEventListener('change', syncScopes);
  $('create-limited').addEventListener('change', syncScopes);
  $('secret-copy').addEventListener('click', copySecret);
  $('secret-done').addEventListener('click', () => {
    hideSecret();
    $('create-name').focus();
  });
  $('password-form').addEventListener('submit', changePassword);
  if ($('register-form')) {
    $('register-open').addEventListener('click', showRegister);
    $('register-close').addEventListener('click', () => showSignIn());
    $('register-form').addEventListener('submit', register);
  }
  $('confirm-ok').addEventListener('click', () => $('confirm').close('ok'));
  $('confirm-cancel').addEventListener('click', () => $('confirm').close('cancel'));

  $('forgot-open').addEventListener('click', showForgot);
  $('forgot-back').addEventListener('click', () => showSignIn());
  $('forgot-form').addEventListener('submit', requestReset);
  $('reset-form').addEventListener('submit', resetPassword);
  $('reset-again').addEventListener('click', () => {
    leaveLinkPage();
    showForgot();
  });
  $('verify-continue').addEventListener('click', continueFromVerify);
  $('mfa-form').addEventListener('submit', sendMFA);
  $('mfa-switch').addEventListener('click', () => setMFAMethod(!mfaWithRecovery));
  $('mfa-back').addEventListener('click', () => {
    mfaToken = '';
    showSignIn();
  });
  $('twofa-start').addEventListener('click', startTwoFactor);
  $('twofa-cancel').addEventListener('click', cancelTwoFactor);
  $('twofa-form').addEventListener('submit', confirmTwoFactor);
  $('recovery-download').addEventListener('click', downloadRecoveryCodes);
  $('recovery-done').addEventListener('click', () => {
    hideRecoveryCodes();
    $('twofa-title').focus();
  });
  $('twofa-regenerate').addEventListener('click', regenerateRecoveryCodes);
  $('twofa-disable').addEventListener('click', disableTwoFactor);
  $('reauth-form').addEventListener('submit', sendReauth);
  $('reauth-cancel').addEventListener('click', () => endReauth(false));
  // Escape closes the dialog: the action is not done.
  $('reauth').addEventListener('close', () => endReauth(false));
  $('email-verify').addEventListener('click', sendVerification);
  $('email-form').addEventListener('submit', changeEmail);

  syncScopes();
  // A link from a mail opens /reset or /verify with its token in the
  // fragment.
  const page = location.pathname.replace(/\/+$/, '');
  const linkToken = new URLSearchParams(location.hash.slice(1)).get('token') || '';
  if (page === '/reset' || page === '/verify') {
    history.replaceState(null, '', page);
  }
  if (page === '/reset') {
    showReset(linkToken);
  } else if (page === '/verify') {
    verifyEmail(linkToken);
  } else if (session) {
    showTokens();
  } else {
    showSignIn();
  }
})();
