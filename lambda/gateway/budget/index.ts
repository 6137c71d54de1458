export * from './items';
export * from './ledger';
export * from './limits';
export * from './pricing';
export * from './transact';
export * from './windows';
export * from './suspension';
export * from './overrides';
