"""The part of GitHub's GraphQL schema the fake GitHub answers and tfbot's report sends, as one SDL.

Names, types, nullability and enum values are GitHub's public schema (octokit/graphql-schema `schema.graphql`;
tests/test_fake_github_graphql.py compares every type here with the npm package @octokit/graphql-schema): the mutations `addComment`,
`updateCheckRun`, `minimizeComment` and `unminimizeComment`, every field of their input types, and of their
payloads only the fields the fake answers (a subset of GitHub's: a selection outside it is refused as a field
the type lacks, where GitHub would answer it). `Query` holds only `node` because a schema must have a query root;
the fake answers no query.

Used by the fake's GraphQL endpoint (tests/support/fake_github_graphql.py) to validate documents and coerce their
variables as GitHub does, and by tests/test_report_graphql.py to check tfbot's report document against the same
types, so the two cannot disagree about GitHub.
"""
from __future__ import annotations

from graphql import GraphQLSchema, build_schema

SDL = """
scalar URI
scalar DateTime

type Query {
  node(id: ID!): Node
}

type Mutation {
  addComment(input: AddCommentInput!): AddCommentPayload
  updateCheckRun(input: UpdateCheckRunInput!): UpdateCheckRunPayload
  minimizeComment(input: MinimizeCommentInput!): MinimizeCommentPayload
  unminimizeComment(input: UnminimizeCommentInput!): UnminimizeCommentPayload
}

# ---- inputs: every field GitHub's input types have --------------------------------------------------------------

input AddCommentInput {
  body: String!
  clientMutationId: String
  subjectId: ID!
}

input UpdateCheckRunInput {
  actions: [CheckRunAction!]
  checkRunId: ID!
  clientMutationId: String
  completedAt: DateTime
  conclusion: CheckConclusionState
  detailsUrl: URI
  externalId: String
  name: String
  output: CheckRunOutput
  repositoryId: ID!
  startedAt: DateTime
  status: RequestableCheckStatusState
}

input CheckRunOutput {
  annotations: [CheckAnnotationData!]
  images: [CheckRunOutputImage!]
  summary: String!
  text: String
  title: String!
}

input CheckAnnotationData {
  annotationLevel: CheckAnnotationLevel!
  location: CheckAnnotationRange!
  message: String!
  path: String!
  rawDetails: String
  title: String
}

input CheckAnnotationRange {
  endColumn: Int
  endLine: Int!
  startColumn: Int
  startLine: Int!
}

input CheckRunOutputImage {
  alt: String!
  caption: String
  imageUrl: URI!
}

input CheckRunAction {
  description: String!
  identifier: String!
  label: String!
}

input MinimizeCommentInput {
  classifier: ReportedContentClassifiers!
  clientMutationId: String
  subjectId: ID!
}

input UnminimizeCommentInput {
  clientMutationId: String
  subjectId: ID!
}

enum RequestableCheckStatusState { COMPLETED IN_PROGRESS PENDING QUEUED WAITING }
enum CheckStatusState { COMPLETED IN_PROGRESS PENDING QUEUED REQUESTED WAITING }
enum CheckConclusionState {
  ACTION_REQUIRED CANCELLED FAILURE NEUTRAL SKIPPED STALE STARTUP_FAILURE SUCCESS TIMED_OUT
}
enum CheckAnnotationLevel { FAILURE NOTICE WARNING }
enum ReportedContentClassifiers { ABUSE DUPLICATE OFF_TOPIC OUTDATED RESOLVED SPAM }

# ---- payloads: the fields the fake answers ----------------------------------------------------------------------

interface Node { id: ID! }

interface Minimizable {
  isMinimized: Boolean!
  minimizedReason: String
}

type Issue implements Node { id: ID! }
type PullRequest implements Node { id: ID! }

type IssueComment implements Node & Minimizable {
  body: String!
  databaseId: Int
  id: ID!
  isMinimized: Boolean!
  minimizedReason: String
  url: URI!
}

type IssueCommentEdge {
  cursor: String!
  node: IssueComment
}

type AddCommentPayload {
  clientMutationId: String
  commentEdge: IssueCommentEdge
  subject: Node
}

type CheckRun implements Node {
  conclusion: CheckConclusionState
  databaseId: Int
  id: ID!
  name: String!
  status: CheckStatusState!
  url: URI!
}

type UpdateCheckRunPayload {
  checkRun: CheckRun
  clientMutationId: String
}

type MinimizeCommentPayload {
  clientMutationId: String
  minimizedComment: Minimizable
}

type UnminimizeCommentPayload {
  clientMutationId: String
  unminimizedComment: Minimizable
}
"""

GITHUB_SCHEMA: GraphQLSchema = build_schema(SDL)
