// The actions queue. Every setting below is read against the engine's behaviour (shared/queue/, shared/worker.ts,
// shared/sweeps/stuckActions.ts); docs/deploy.md explains each.

@description('Azure region.')
param location string

@description('Service Bus namespace name (globally unique).')
param name string

@description('Standard or Premium: duplicate detection, which the engine relies on, is not offered on Basic.')
@allowed(['Standard', 'Premium'])
param sku string = 'Standard'

@description('The queue\'s lock duration, in seconds: the same parameter sets RESPONDER_RUNNING_LEASE_SECONDS.')
@minValue(5)
@maxValue(300)
param lockDurationSeconds int

@description('Principal id of the managed identity that sends to and receives from the queue.')
param principalId string

param tags object = {}

// Role definition ids: learn.microsoft.com/azure/role-based-access-control/built-in-roles
var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var serviceBusDataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: { name: sku, tier: sku, capacity: 1 }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource actions 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  // functions/actionWorker.ts: queueName 'actions'.
  name: 'actions'
  properties: {
    // Set at creation only (service-bus-messaging/duplicate-detection.md). The engine's MessageIds are idempotency
    // keys: a send repeated after a failure or a crash (the relay's retries, "schedule the copy, then complete") is
    // dropped here instead of delivered twice.
    requiresDuplicateDetection: true
    // Shorter than an hour on purpose: stuckActions sends a queued action again under the same MessageId once it has
    // waited an hour with nothing due (shared/sweeps/sweep.ts queuedStuckMs). A window that long would drop that resend
    // as a duplicate of the lost original, silently. Ten minutes: the service's default, and the embedded queue's that
    // the tests and the local host run on (shared/queue/embeddedQueue.ts).
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    // The worker renews its claim every third of the lease and the host renews the lock alike; a crashed instance's
    // message comes back when its lock lapses, so lock and lease are one duration (shared/actions/lifecycle.ts).
    lockDuration: 'PT${lockDurationSeconds}S'
    // deadLetterReconciler turns what Service Bus dead-letters into ledger records; its reading of the broker's
    // description assumes 10 (shared/queue/queue.ts: "could not be consumed after 10 delivery attempts").
    maxDeliveryCount: 10
    // An action that waited a day undelivered (the app was down) goes to the dead-letter queue, where the reconciler
    // records it dead-lettered for a human, rather than acting on day-old evidence unseen.
    defaultMessageTimeToLive: 'P1D'
    deadLetteringOnMessageExpiration: true
    enablePartitioning: false
    requiresSession: false
  }
}

// Scoped to the queue, not the namespace: the identity can reach nothing else in it. The trigger receives; the engine
// sends (new actions, retry copies, follow-ups) and reads the dead-letter sub-queue, which the queue scope includes.
resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(actions.id, principalId, serviceBusDataSender)
  scope: actions
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource receiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(actions.id, principalId, serviceBusDataReceiver)
  scope: actions
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = namespace.name
// serviceBusEndpoint is https://<name>.servicebus.<cloud suffix>:443/: its host, whatever the cloud.
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '/')[2], ':')[0]
output queueName string = actions.name
