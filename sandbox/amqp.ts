import type { AddressInfo, Server, Socket } from 'node:net';
import rhea, { type Container, type Message, type Receiver, type Sender } from 'rhea';

/**
 * The AMQP 1.0 a sandbox broker needs beyond what rhea gives it: a listening end in the shape the SDKs expect of an
 * emulator, a sending link that keeps to the link-credit its receiver granted (AMQP 1.0 §2.6.7), the reply links of
 * `$cbs` and `$management`, the SDKs' batch envelope, and what rhea keeps of a peer's attach.
 */

/** A broker's listening end, and the fault and the shutdown that act on its clients' sockets. */
export interface Listener {
  readonly port: number;
  /** The namespace's connection string, in the development-emulator shape the SDKs take. */
  readonly connectionString: string;
  /** Cut every client connection at the socket, as a network failure would. */
  dropConnections(): void;
  /** Cut every client connection and stop listening. */
  close(): Promise<void>;
}

/**
 * Listen on 127.0.0.1 (port 0 picks one) as the SDKs speak to an emulator: plain TCP, or TLS with `tls` (the
 * managed-identity shape always speaks it), SASL ANONYMOUS. A client's connection failing is no error of the broker's.
 */
export async function listen(container: Container, port: number, tls?: { key: Buffer; cert: Buffer }): Promise<Listener> {
  container.sasl_server_mechanisms.enable_anonymous();
  container.on('connection_error', () => undefined);
  container.on('error', () => undefined);
  const options = tls ? { port, host: '127.0.0.1', transport: 'tls' as const, key: tls.key, cert: tls.cert } : { port, host: '127.0.0.1' };
  const server = container.listen(options as Parameters<Container['listen']>[0]) as unknown as Server;
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const listener: Listener = {
    get port() {
      return (server.address() as AddressInfo).port;
    },
    get connectionString() {
      return `Endpoint=sb://127.0.0.1:${this.port};SharedAccessKeyName=test-only;SharedAccessKey=test-only-not-a-secret;UseDevelopmentEmulator=true`;
    },
    dropConnections() {
      for (const socket of sockets) socket.destroy();
    },
    async close() {
      this.dropConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return listener;
}

/** The message format of an Azure SDK batch send: one envelope whose data sections are the encoded messages. */
export const BATCH_FORMAT = 0x80013700;

/**
 * A link the broker sends on, and its flow state as the sending end keeps it. rhea keeps its own count, but only of
 * transfers it has written: a loop that trusted `sendable()` would hand over everything ready before the first went out.
 * So the broker reads the receiver's flow frames itself, and says when its answer to a drain is due.
 */
export class CreditedLink {
  /** The sender's delivery-count: deliveries handed to the link, plus the ones a drain advanced over. */
  private deliveryCount: number;
  /** How many more the receiver allows: only while it is above 0 may a message go out. */
  private linkCredit: number;
  /** The receiver asked for its credit to be used up or given back (`drain`), and has not been answered yet. */
  private drain = false;
  /** The next flow this link writes answers that drain. */
  private drainAnswerDue = false;

  /** Follow `sender`'s flow; `onCredit` runs after each flow frame, to send what the new credit allows. */
  constructor(
    readonly sender: Sender,
    onCredit: () => void,
  ) {
    const link = rheaSender(sender);
    // At attach the receiver has granted nothing yet; rhea's own count is taken in case a flow came first.
    this.deliveryCount = link.delivery_count;
    this.linkCredit = Math.max(0, link.credit);
    const rheaOnFlow = link.on_flow.bind(link);
    link.on_flow = (frame) => {
      this.onFlow(frame.performative);
      rheaOnFlow(frame);
      onCredit();
    };
    // rhea echoes a drain only while credit is left; the broker says when its answer is due, including when the
    // credit went on messages.
    link._get_drain = () => {
      const due = this.drainAnswerDue;
      this.drainAnswerDue = false;
      return due;
    };
  }

  /** Credit is left, and rhea's outgoing window has room. */
  get canSend(): boolean {
    return this.linkCredit > 0 && this.sender.sendable();
  }

  /** Send one message, spending a credit. */
  send(message: Message, tag?: Buffer): void {
    this.linkCredit--;
    this.deliveryCount++;
    this.sender.send(message, tag);
  }

  /**
   * After sending what it could: answer a drain once the credit is spent or nothing is left to send. The
   * delivery-count advances over the credit left, so the credit is 0, and a flow tells the receiver.
   */
  answerDrain(nothingLeft: boolean): void {
    if (!this.drain || (this.linkCredit > 0 && !nothingLeft)) return;
    const link = rheaSender(this.sender);
    // rhea counts its transfers when it writes them, before it writes this flow: advance its count by the same.
    link.delivery_count += this.linkCredit;
    link.credit -= this.linkCredit;
    this.deliveryCount += this.linkCredit;
    this.linkCredit = 0;
    this.drain = false;
    this.drainAnswerDue = true;
    link.issue_flow = true;
    link.connection._register();
  }

  /**
   * A flow frame from the receiver: its delivery-count plus its link-credit is how far the sender may count, so
   * link-credit = delivery-count(receiver) + link-credit(receiver) − delivery-count(sender). Transfers still on their way
   * when the receiver wrote the frame are in the difference. A receiver that has not seen our attach sends no
   * delivery-count: ours started at 0.
   */
  private onFlow(flow: FlowFields): void {
    if (flow.link_credit === undefined) return; // no link state in it: nothing changes
    this.linkCredit = Math.max(0, (flow.delivery_count ?? 0) + flow.link_credit - this.deliveryCount);
    this.drain = flow.drain === true;
  }
}

/**
 * The links a broker answers `$cbs` and `$management` requests on: the SDK attaches one for each request-response node
 * and names it in every request's `reply_to`.
 */
export class ReplyLinks {
  private readonly links = new Map<string, Sender>();

  /** A client receiver attached to a request-response node: found by its target address, or else by its name. */
  add(sender: Sender): void {
    this.links.set(String(attachOf(sender).target?.address ?? sender.name), sender);
    this.links.set(sender.name, sender);
  }

  /** `sender` is a reply link: what the client settles on it are answers, not messages the broker holds. */
  has(sender: Sender): boolean {
    return this.links.has(sender.name);
  }

  /** Links that closed, or whose connection went. */
  forget(gone: (link: Sender) => boolean): void {
    for (const [key, link] of this.links) if (gone(link)) this.links.delete(key);
  }

  /** Answer `request` on the link its `reply_to` names, with the status properties the service's answers carry. */
  answer(request: Message, status: Record<string, unknown>, body: Record<string, unknown>): void {
    this.links.get(String(request.reply_to))?.send({ correlation_id: request.message_id, application_properties: status, body });
  }
}

/** What rhea keeps of the peer's attach frame (not in its typings). */
export interface RemoteAttach {
  source?: { address?: string; filter?: Record<string, unknown> };
  target?: { address?: string };
  snd_settle_mode?: number;
  properties?: Record<string, unknown>;
  desired_capabilities?: string | string[];
}

export function attachOf(link: Sender | Receiver): RemoteAttach {
  return (link as unknown as { remote: { attach?: RemoteAttach } }).remote.attach ?? {};
}

/** Announce the largest message the broker takes in our attach reply: the SDKs size their batches by it. */
export function announceMaxMessageSize(receiver: Receiver, bytes: number): void {
  (receiver as unknown as { local: { attach: { max_message_size?: number } } }).local.attach.max_message_size = bytes;
}

/** rhea's decoder, typed as the message the rest of rhea's typings use. */
export const decode = (buffer: Buffer): Message => rhea.message.decode(buffer) as unknown as Message;

/** The messages of a batch envelope, each as its sender encoded it. */
export function unbatch(envelope: Message): Message[] {
  const section = envelope.body as { content: Buffer | Buffer[]; multiple?: boolean };
  const parts = section.multiple ? (section.content as Buffer[]) : [section.content as Buffer];
  return parts.map(decode);
}

/** Delivery outcomes as rhea encodes them (not in its typings). */
export const outcomes = rhea.message as unknown as {
  accepted(): { described(): unknown };
  released(): { described(): unknown };
  rejected(fields: { error?: { condition: string; description: string } }): { described(): unknown };
};

/** What rhea keeps of a sending link's flow state, and the hooks the broker takes over (not in its typings). */
interface RheaSender {
  credit: number;
  delivery_count: number;
  issue_flow: boolean;
  connection: { _register(): void };
  on_flow(frame: { performative: FlowFields }): void;
  _get_drain(): boolean;
}

const rheaSender = (sender: Sender): RheaSender => sender as unknown as RheaSender;

/** A flow frame's link fields, as the receiver sends them. */
interface FlowFields {
  delivery_count?: number;
  link_credit?: number;
  drain?: boolean;
}
