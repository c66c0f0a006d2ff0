// POST over HTTPS/1.1 like `curl -k`: no certificate verification, keep-alive.
import { Agent, request } from 'node:https';

export const insecureAgent = (): Agent => new Agent({ rejectUnauthorized: false, keepAlive: true, maxSockets: 16 });

export function post(url: string, body: string | Buffer, agent: Agent): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
