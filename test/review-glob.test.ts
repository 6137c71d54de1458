import { globMatches, globsOverlap } from '../lib/review/glob';

describe('globMatches', () => {
  test.each([
    ['bedrock:*', 'bedrock:InvokeModel', true],
    ['bedrock:invoke*', 'bedrock:InvokeModel', true],
    ['bedrock:Invoke?odel', 'bedrock:InvokeModel', true],
    ['s3:Get*', 'bedrock:InvokeModel', false],
    ['arn:*:bedrock:*', 'arn:<AWS::Partition>:bedrock:*::foundation-model/x', true],
    ['*', '', true],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
  ])('%s matches %s: %s', (pattern, text, expected) => {
    expect(globMatches(pattern, text)).toBe(expected);
  });

  test('resources compare with letter case', () => {
    expect(globMatches('arn:aws:s3:::Bucket', 'arn:aws:s3:::bucket', true)).toBe(false);
  });
});

describe('globsOverlap', () => {
  test.each([
    ['bedrock:*', 'bedrock:Invoke*', true],
    ['*', 'bedrock:Invoke*', true],
    ['bedrock:InvokeModel', 'bedrock:Invoke*', true],
    ['bedrock:Get*', 'bedrock:Invoke*', false],
    ['*Model', 'bedrock:Invoke*', true],
    ['s3:*', 'bedrock:Invoke*', false],
    ['bedrock:?nvoke*', 'bedrock:Invoke*', true],
  ])('%s and %s: %s', (a, b, expected) => {
    expect(globsOverlap(a, b)).toBe(expected);
  });
});
