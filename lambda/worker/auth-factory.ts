// Moved to lambda/shared, because the feedback Lambda authenticates the same way.
export * from '../shared/auth-factory';
