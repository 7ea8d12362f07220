// A test double of the curriculum's JavaScript node, written by us from the project's
// PROTOCOL.md (the wire protocol): it is NOT the curriculum's code. It behaves as those nodes do,
// defects included, so that our Rust nodes can be tested in mixed networks:
//   - it sends only on connections it dialled and reads only on connections it accepted;
//   - it dials each address at most once at a time and never retries a failed dial;
//   - it floods every new transaction to every node it has dialled, and drops the ones whose
//     hash it already holds;
//   - a frame that is not JSON crashes it.
//
// Run it with a node folder as the working directory: `node path/to/node.js`.
// It reads `.env` (PORT, optional MY_PUBLIC_KEY), `known-peers.json` and `transactions.json`.

'use strict';

const fs = require('fs');
const { WebSocket, WebSocketServer } = require('ws');
const { loadEnv } = require('./env');

loadEnv();

const PORT = process.env.PORT;
const MY_ADDRESS = `ws://localhost:${PORT}`;
const knownPeers = JSON.parse(fs.readFileSync('known-peers.json', 'utf8'));
const transactionPool = JSON.parse(fs.readFileSync('transactions.json', 'utf8'));

const connectedAddresses = [];
const attemptingToConnectToAddresses = [];
// The connections this node dialled, by address: the only ones it sends on.
const openedSockets = new Map();

function log(...args) {
  console.log(new Date().toISOString(), `[${MY_ADDRESS}]`, ...args);
}

function remove(list, item) {
  const index = list.indexOf(item);
  if (index !== -1) list.splice(index, 1);
}

function writeTransactions() {
  // The whole pool, every time, as the curriculum's writeTransactions does.
  fs.writeFileSync('transactions.json', JSON.stringify(transactionPool, null, 2));
}

function connect(address) {
  if (
    address === MY_ADDRESS ||
    connectedAddresses.includes(address) ||
    attemptingToConnectToAddresses.includes(address)
  ) {
    return;
  }
  attemptingToConnectToAddresses.push(address);
  log('dialling', address);
  const socket = new WebSocket(address);

  socket.on('open', () => {
    remove(attemptingToConnectToAddresses, address);
    connectedAddresses.push(address);
    openedSockets.set(address, socket);
    log('connected to', address, '; connectedAddresses:', JSON.stringify(connectedAddresses));
    socket.send(JSON.stringify({ type: 'HANDSHAKE', data: [MY_ADDRESS, ...connectedAddresses] }));
  });

  socket.on('error', (error) => {
    // A failed dial is never retried; an error on an open connection is followed by 'close'.
    remove(attemptingToConnectToAddresses, address);
    log('connection to', address, 'failed:', error.message);
  });

  socket.on('close', () => {
    remove(attemptingToConnectToAddresses, address);
    if (openedSockets.get(address) === socket) {
      openedSockets.delete(address);
      remove(connectedAddresses, address);
      log('connection to', address, 'closed; connectedAddresses:', JSON.stringify(connectedAddresses));
    }
  });
}

function onTransaction(transaction) {
  if (transactionPool.some((held) => held.hash === transaction.hash)) {
    log('dropped duplicate transaction', transaction.hash);
    return;
  }
  transactionPool.push(transaction);
  writeTransactions();
  log('new transaction', transaction.hash, '; pool holds', transactionPool.length);
  const frame = JSON.stringify({ type: 'TRANSACTION', data: transaction });
  for (const socket of openedSockets.values()) {
    socket.send(frame);
  }
}

const server = new WebSocketServer({ port: Number(PORT) });
server.on('listening', () => log('listening on port', PORT));

server.on('connection', (socket) => {
  socket.on('message', (dataString) => {
    // Not guarded on purpose: a frame that is not JSON crashes the node, as in the original.
    const message = JSON.parse(dataString);
    switch (message.type) {
      case 'HANDSHAKE':
        log('HANDSHAKE', JSON.stringify(message.data));
        message.data.forEach(connect);
        break;
      case 'TRANSACTION':
        onTransaction(message.data);
        break;
      default:
        log('ignored a frame of unknown type', JSON.stringify(message.type));
    }
  });
});

knownPeers.forEach(connect);
