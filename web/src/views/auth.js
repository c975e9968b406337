// Sign up and log in: the session endpoint keeps the token in an httpOnly cookie.
import { useState } from 'preact/hooks';
import * as api from '../api.js';
import { html } from '../html.js';
import { refreshMe } from '../session.js';

export function AuthView({ mode }) {
  const signup = mode === 'signup';
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.login(username, password, signup);
      await refreshMe();
      location.hash = signup ? '#/portfolio' : '#/';
    } catch (err) {
      setError(api.explain(err));
    } finally {
      setBusy(false);
    }
  }

  return html`<section class="auth card">
    <h1>${signup ? 'Create an account' : 'Log in'}</h1>
    <form onSubmit=${submit}>
      <label for="username">Username</label>
      <input id="username" name="username" autocomplete="username" required minlength="3" maxlength="32"
             value=${username} onInput=${(e) => setUsername(e.target.value)} />
      <label for="password">Password</label>
      <input id="password" name="password" type="password" required minlength="8"
             autocomplete=${signup ? 'new-password' : 'current-password'}
             value=${password} onInput=${(e) => setPassword(e.target.value)} />
      ${signup && html`<p class="note">3–32 of a–z, 0–9 and _; a password of at least 8 characters.</p>`}
      <button type="submit" disabled=${busy}>${signup ? 'Sign up' : 'Log in'}</button>
      ${error && html`<p class="error" role="alert" data-testid="auth-error">${error}</p>`}
    </form>
    <p>${signup ? html`Have an account? <a href="#/login">Log in</a>` : html`New here? <a href="#/signup">Sign up</a>`}</p>
  </section>`;
}
