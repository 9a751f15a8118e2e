// A loopback UDP DNS server that answers every question with SERVFAIL (the test DNS server of
// test/helpers has no way to do that): for "SERVFAIL is reported as such, never as missing".
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export async function startServfailServer(): Promise<{ host: string; port: number; stop(): Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    try {
      const q = dnsPacket.decode(msg);
      const reply = dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 2, questions: q.questions, answers: [] });
      socket.send(reply, rinfo.port, rinfo.address);
    } catch {
      // not a DNS packet: stay silent
    }
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return { host: '127.0.0.1', port: socket.address().port, stop: () => new Promise<void>((resolve) => socket.close(() => resolve())) };
}
