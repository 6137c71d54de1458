/**
 * Example tool `lookup_order`: returns an order's status, items and total.
 * The orders live in this file so that the example runs without a database;
 * a real tool would read them from the shop's order service.
 */

export interface LookupOrderInput {
  readonly orderId: string;
}

export interface OrderItem {
  readonly sku: string;
  readonly name: string;
  readonly quantity: number;
  readonly unitPriceUsd: number;
}

export interface Order {
  readonly orderId: string;
  readonly status: 'processing' | 'shipped' | 'delivered' | 'cancelled';
  readonly placedAt: string;
  readonly items: readonly OrderItem[];
  readonly totalUsd: number;
  readonly trackingNumber?: string;
}

const ORDERS: readonly Omit<Order, 'totalUsd'>[] = [
  {
    orderId: 'ORD-10001',
    status: 'delivered',
    placedAt: '2025-03-02T10:15:00Z',
    items: [
      { sku: 'KB-204', name: 'Mechanical keyboard', quantity: 1, unitPriceUsd: 129 },
      { sku: 'MS-110', name: 'Wireless mouse', quantity: 1, unitPriceUsd: 39.5 },
    ],
    trackingNumber: '1Z999AA10123456784',
  },
  {
    orderId: 'ORD-10002',
    status: 'shipped',
    placedAt: '2025-03-05T16:40:00Z',
    items: [{ sku: 'HD-550', name: 'Noise-cancelling headphones', quantity: 1, unitPriceUsd: 249 }],
    trackingNumber: '1Z999AA10123456791',
  },
  {
    orderId: 'ORD-10003',
    status: 'processing',
    placedAt: '2025-03-07T08:05:00Z',
    items: [{ sku: 'CB-USB-C', name: 'USB-C cable, 2 m', quantity: 3, unitPriceUsd: 12.99 }],
  },
];

/** Rounds to whole cents, so that sums of prices print as money. */
function cents(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Finds an order by id, or returns undefined. */
export function findOrder(orderId: string): Order | undefined {
  const order = ORDERS.find((candidate) => candidate.orderId === orderId);
  if (!order) return undefined;
  const totalUsd = cents(
    order.items.reduce((sum, item) => sum + item.quantity * item.unitPriceUsd, 0),
  );
  return { ...order, totalUsd };
}

/**
 * Lambda handler. The worker has validated the input against the tool's
 * schema. The handler checks again, because any principal allowed to invoke
 * the function can send it anything.
 */
export async function handler(
  event: LookupOrderInput,
): Promise<{ found: boolean; order?: Order; message?: string }> {
  if (!event || typeof event.orderId !== 'string') {
    throw new Error('Invalid input: expected {"orderId": "<order id>"}.');
  }
  const order = findOrder(event.orderId);
  if (!order) {
    return { found: false, message: `No order with id ${event.orderId} exists.` };
  }
  return { found: true, order };
}
