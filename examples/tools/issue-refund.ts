/**
 * Example tool `issue_refund`, a high-impact tool, which the worker runs only
 * after a person approved the call. It refunds part or all of an order and
 * returns the refund record. The records live in memory here, where a real
 * tool would call the payment provider.
 */
import { randomUUID } from 'crypto';
import { findOrder } from './lookup-order';

export interface IssueRefundInput {
  readonly orderId: string;
  readonly amountUsd: number;
  readonly reason: string;
}

export interface RefundRecord {
  readonly refundId: string;
  readonly orderId: string;
  readonly amountUsd: number;
  readonly reason: string;
  readonly status: 'issued';
  readonly issuedAt: string;
}

/** Refunds issued by this instance, by order id; a warm Lambda instance keeps them. */
const refunds = new Map<string, RefundRecord[]>();

/** Sum of the refunds an order has had so far. */
function refundedUsd(orderId: string): number {
  return (refunds.get(orderId) ?? []).reduce((sum, refund) => sum + refund.amountUsd, 0);
}

/**
 * Lambda handler. It throws when the refund is not allowed, and the worker
 * reports that to the model as a tool error.
 */
export async function handler(event: IssueRefundInput): Promise<RefundRecord> {
  if (
    !event ||
    typeof event.orderId !== 'string' ||
    typeof event.amountUsd !== 'number' ||
    typeof event.reason !== 'string'
  ) {
    throw new Error(
      'Invalid input: expected {"orderId": string, "amountUsd": number, "reason": string}.',
    );
  }
  const order = findOrder(event.orderId);
  if (!order) {
    throw new Error(
      `Order ${event.orderId} does not exist; look the order up before refunding it.`,
    );
  }
  if (order.status === 'cancelled') {
    throw new Error(
      `Order ${event.orderId} is cancelled and was never charged; nothing to refund.`,
    );
  }
  const refundable = Math.round((order.totalUsd - refundedUsd(order.orderId)) * 100) / 100;
  if (!(event.amountUsd > 0) || event.amountUsd > refundable) {
    throw new Error(
      `Refund of ${event.amountUsd} USD for order ${order.orderId} is not allowed: ` +
        `the amount must be above 0 and at most the ${refundable} USD not yet refunded.`,
    );
  }

  const record: RefundRecord = {
    refundId: `RF-${randomUUID()}`,
    orderId: order.orderId,
    amountUsd: event.amountUsd,
    reason: event.reason,
    status: 'issued',
    issuedAt: new Date().toISOString(),
  };
  refunds.set(order.orderId, [...(refunds.get(order.orderId) ?? []), record]);
  return record;
}
