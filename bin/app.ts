#!/usr/bin/env node
import * as path from 'path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AgentStack, ConfigError, loadConfig } from '../lib';

// Reads the config named by `-c config=PATH` (default
// agent-stack.config.json) and synthesizes the AgentStack it describes.
const app = new App();
const configPath = path.resolve(String(app.node.tryGetContext('config') ?? 'agent-stack.config.json'));

try {
  const config = loadConfig(configPath);
  new AgentStack(app, config.stackName, { config, configDir: path.dirname(configPath) });
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  throw error;
}

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
