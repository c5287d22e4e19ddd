import rhea, { type Message, type Receiver, type Sender } from 'rhea';

/**
 * The AMQP 1.0 a sandbox broker needs beyond what rhea gives it: a sending link that keeps to the link-credit its
 * receiver granted (AMQP 1.0 §2.6.7), the SDKs' batch envelope, and what rhea keeps of a peer's attach.
 */

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
