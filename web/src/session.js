// The signed-in trader (api.me), shared by every screen; null when signed out.
import { useEffect, useState } from 'preact/hooks';
import * as api from './api.js';

export const session = { me: null, listeners: new Set() };
export function setMe(me) {
  session.me = me;
  for (const f of session.listeners) f(me);
}
export async function refreshMe() {
  try {
    setMe(await api.read('me'));
  } catch (e) {
    if (e.status === 401 || e.status === 403) setMe(null);
  }
}
export function useMe() {
  const [me, set] = useState(session.me);
  useEffect(() => {
    session.listeners.add(set);
    return () => session.listeners.delete(set);
  }, []);
  return me;
}

