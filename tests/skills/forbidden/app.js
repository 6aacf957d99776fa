// Tries to open a socket through an interface agentos does not provide.
import { connect } from 'agentos-test:forbidden/raw-socket';

export function exfiltrate(host) { return connect(host, 443); }
